#!/usr/bin/env python3
"""Golden fixture for vitslim's model: builds a small ViT with timm's own VisionTransformer
(random weights, no download), applies vitslim's block modes on top (vit_modes.py) and saves
  <out>/golden_vit_test.safetensors   the weights, timm key names
  <out>/golden_vit_test_expected.safetensors   input images and the logits of every case
The C++ test (tests/unit/test_golden.cpp) must reproduce each case to <= 1e-4.
Shape: the `vit_test` preset (img 32, patch 8, dim 24, depth 4, heads 2, 10 classes).
"""
import argparse
import os
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timm_compat import timm  # noqa: E402
from vit_modes import forward_with_modes, modes_from_spec  # noqa: E402

SHAPE = dict(img_size=32, patch_size=8, in_chans=3, embed_dim=24, depth=4, num_heads=2, num_classes=10)
CASES = {
    "full": {},
    "dilute": {1: ("diluting", 0.5), 2: ("diluting", 0.5)},
    "removed": {0: ("removed", 0.0), 2: ("removed", 0.0)},
    "skipped": {1: ("skipped", 1.0), 3: ("skipped", 1.0)},
    "mixed": {0: ("removed", 0.0), 1: ("diluting", 0.25), 3: ("skipped", 1.0)},
}
BATCH = 3


def build(seed):
    torch.manual_seed(seed)
    model = timm.models.vision_transformer.VisionTransformer(**SHAPE, mlp_ratio=4.0, qkv_bias=True)
    # timm's init is tiny (std 0.02): spread weights so every path moves the logits visibly.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name == "norm.weight":
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.3 * torch.randn_like(p))
    return model.eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()
    model = build(args.seed)
    torch.manual_seed(args.seed + 1)
    images = torch.randn(BATCH, SHAPE["in_chans"], SHAPE["img_size"], SHAPE["img_size"])
    expected = {"input": images}
    with torch.no_grad():
        reference = model(images)
        for name, spec in CASES.items():
            logits = forward_with_modes(model, images, modes_from_spec(SHAPE["depth"], spec))
            expected[f"logits.{name}"] = logits
        assert torch.allclose(expected["logits.full"], reference, atol=1e-6), "mode forward != timm forward"
    os.makedirs(args.out, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(args.out, "golden_vit_test.safetensors"), metadata={"format": "pt"})
    save_file(expected, os.path.join(args.out, "golden_vit_test_expected.safetensors"),
              metadata={"cases": ";".join(f"{k}={v}" for k, v in CASES.items()), "timm": timm.__version__,
                        "torch": torch.__version__})
    print(f"golden fixture written to {args.out} (timm {timm.__version__}, torch {torch.__version__})")


if __name__ == "__main__":
    main()
