#!/usr/bin/env python3
"""Loads a vitslim .safetensors export in Python (safetensors + timm's VisionTransformer, with
the removed attention layers from the file's metadata) and checks its logits against a golden
case. Usage: check_export.py FILE --expected golden_vit_test_expected.safetensors --case removed
"""
import argparse
import os
import sys

import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vit_modes import forward_with_modes, load_export  # noqa: E402

TOLERANCE = 1e-4


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("file")
    ap.add_argument("--expected", required=True)
    ap.add_argument("--case", required=True)
    a = ap.parse_args()
    model, modes, folded = load_export(a.file)
    removed = [b for b, (mode, _) in enumerate(modes) if mode == "removed"]
    golden = load_file(a.expected)
    with torch.no_grad():
        logits = forward_with_modes(model, golden["input"], modes, folded)
    diff = (logits - golden[f"logits.{a.case}"]).abs().max().item()
    print(f"{a.file}: removed {removed}, max |logits - golden {a.case}| = {diff:.2e}")
    sys.exit(0 if diff <= TOLERANCE else 1)


if __name__ == "__main__":
    main()
