#!/usr/bin/env python3
"""Loads a vitslim .safetensors export in Python (safetensors + timm's VisionTransformer, with
the removed attention layers from the file's metadata) and checks its logits against a golden
case. Usage: check_export.py FILE --expected golden_vit_test_expected.safetensors --case removed
"""
import argparse
import os
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timm_compat import timm  # noqa: E402
from vit_modes import forward_with_modes  # noqa: E402

TOLERANCE = 1e-4


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("file")
    ap.add_argument("--expected", required=True)
    ap.add_argument("--case", required=True)
    a = ap.parse_args()
    with safe_open(a.file, "pt") as f:
        meta = f.metadata()
    removed = [int(x) for x in meta["vitslim.removed_layers"].split(",") if x]
    state = load_file(a.file)
    dim = state["cls_token"].shape[-1]
    patch = state["patch_embed.proj.weight"].shape[-1]
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    model = timm.models.vision_transformer.VisionTransformer(
        img_size=int(meta["vitslim.img_size"]), patch_size=patch, in_chans=state["patch_embed.proj.weight"].shape[1],
        embed_dim=dim, depth=depth, num_heads=int(meta["vitslim.num_heads"]),
        num_classes=state["head.weight"].shape[0]).eval()
    missing, unexpected = model.load_state_dict(state, strict=False)
    allowed = {k for k in missing if any(k.startswith(f"blocks.{b}.attn.") or k.startswith(f"blocks.{b}.norm1.")
                                         for b in removed)}
    if set(missing) != allowed or unexpected:
        sys.exit(f"FAIL: keys do not map: missing {sorted(set(missing) - allowed)}, unexpected {unexpected}")
    golden = load_file(a.expected)
    modes = [("removed", 0.0) if b in removed else ("full", 1.0) for b in range(depth)]
    with torch.no_grad():
        logits = forward_with_modes(model, golden["input"], modes)
    diff = (logits - golden[f"logits.{a.case}"]).abs().max().item()
    print(f"{a.file}: removed {removed}, max |logits - golden {a.case}| = {diff:.2e}")
    sys.exit(0 if diff <= TOLERANCE else 1)


if __name__ == "__main__":
    main()
