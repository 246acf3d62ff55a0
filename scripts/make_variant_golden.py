#!/usr/bin/env python3
"""Golden fixtures for the ViT variants vitslim supports (docs/method.md section 8), written by
timm at test time (random weights, no download):

  <out>/variant_<case>.safetensors           timm's state dict of a scaled-down model
  <out>/variant_<case>_expected.safetensors  input images, the logits of every attention mode and
                                             pos_embed resampled by timm to 2x2 and 5x5 grids
  <out>/variant_costs.json                   full-size parameter counts and matmul multiply-adds

Each case is a timm model (the one a vitslim preset names, or timm's VisionTransformer with one
feature switched on) shrunk by keyword arguments: depth 4, width 48, 2 heads, a 3x3 patch grid.
Its expected file's metadata holds the vitslim flags that build the same model ("args"). The
modes are those of make_golden.py (vit_modes.py), so every mode of tests/unit/test_variants.cpp
compares vitslim's logits with timm's own modules.
The costs are timm's parameter count (sum of numel) and the multiply-adds of its matmuls and
convolutions as torch's FlopCounterMode counts them (flops / 2; LayerNorm is not among them).
Usage: make_variant_golden.py --out DIR
"""
import argparse
import json
import os
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timm_compat import timm  # noqa: E402
from make_golden import CASES as GOLDEN_CASES  # noqa: E402
from vit_modes import forward_with_modes, modes_from_spec  # noqa: E402

SMALL = dict(depth=4, embed_dim=48, num_heads=2)
# case: (timm model, vitslim preset or "", timm kwargs beyond SMALL, extra vitslim flags)
CASES = {
    "deit_base_distilled": ("deit_base_distilled_patch16_224", "deit_base_distilled", dict(img_size=48, num_classes=10), []),
    "deit3_small": ("deit3_small_patch16_224", "deit3_small", dict(img_size=48, num_classes=10), []),
    "deit3_base": ("deit3_base_patch16_224", "deit3_base", dict(img_size=48, num_classes=10), []),
    "vit_base_augreg": ("vit_base_patch16_224", "vit_base_augreg", dict(img_size=48, num_classes=10), []),
    "vit_small_dinov2": ("vit_small_patch14_dinov2", "vit_small_dinov2", dict(img_size=42, num_classes=0), []),
    "vit_small_dinov2_reg": ("vit_small_patch14_reg4_dinov2", "vit_small_dinov2_reg", dict(img_size=42, num_classes=0),
                             []),
    "vit_base_clip": ("vit_base_patch16_clip_quickgelu_224", "vit_base_clip", dict(img_size=48, num_classes=10), []),
    # Features no preset above has, on timm's VisionTransformer.
    "avg_fc_norm": ("vit_base_patch16_224", "", dict(img_size=48, num_classes=10, global_pool="avg"),
                    ["--global-pool", "avg"]),
    "no_class_token": ("vit_base_patch16_224", "", dict(img_size=48, num_classes=10, class_token=False,
                                                       global_pool="avg", fc_norm=False), ["--fc-norm", "false"]),
    "qk_norm": ("vit_base_patch16_224", "", dict(img_size=48, num_classes=10, qk_norm=True, qkv_bias=False), []),
}
MODES = GOLDEN_CASES  # the attention modes of the DeiT golden fixture, on the same 4 blocks
BATCH = 3
RESAMPLED_GRIDS = (2, 5)  # from 3x3: down and up
COST_PRESETS = {  # vitslim preset: (timm model at full size, its class count in the preset)
    "deit_base_distilled": ("deit_base_distilled_patch16_224", 1000),
    "deit3_base": ("deit3_base_patch16_224", 1000),
    "deit3_small": ("deit3_small_patch16_224", 1000),
    "vit_small_dinov2": ("vit_small_patch14_dinov2", 0),
    "vit_small_dinov2_reg": ("vit_small_patch14_reg4_dinov2", 0),
    "vit_base_clip": ("vit_base_patch16_clip_quickgelu_224", 512),
    "deit_base": ("deit_base_patch16_224", 1000),
}


def spread(model, seed):
    """timm's init is tiny (std 0.02, LayerScale 1e-5): spread every weight so each path moves the
    logits visibly; norms and LayerScale around 1."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("norm1.weight", "norm2.weight", "norm.weight", "fc_norm.weight", "norm_pre.weight",
                              "q_norm.weight", "k_norm.weight", ".gamma")):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.3 * torch.randn_like(p))
    return model.eval()


def vitslim_args(preset, kwargs, extra, patch_size):
    args = ["--model", preset] if preset else []
    args += ["--img-size", str(kwargs["img_size"]), "--depth", str(SMALL["depth"]), "--embed-dim",
             str(SMALL["embed_dim"]), "--num-heads", str(SMALL["num_heads"]), "--num-classes",
             str(kwargs["num_classes"])]
    if not preset:
        args += ["--patch-size", str(patch_size)]
    return args + extra


def write_case(out, case, seed):
    name, preset, kwargs, extra = CASES[case]
    model = spread(timm.create_model(name, pretrained=False, **SMALL, **kwargs), seed)
    patch = model.patch_embed.patch_size[0]
    torch.manual_seed(seed + 1)
    images = torch.randn(BATCH, 3, kwargs["img_size"], kwargs["img_size"])
    expected = {"input": images}
    with torch.no_grad():
        reference = model(images)
        for mode, spec in MODES.items():
            logits = forward_with_modes(model, images, modes_from_spec(SMALL["depth"], spec))
            expected[f"logits.{mode}"] = logits.contiguous()
        assert torch.allclose(expected["logits.full"], reference, atol=1e-5), f"{case}: mode forward != timm forward"
    # pos_embed resampled as timm's checkpoint filter does (bicubic, antialiased) to a 2x2 and a
    # 5x5 grid, prefix-token rows kept where pos_embed covers them.
    prefix = 0 if model.no_embed_class else model.num_prefix_tokens
    for grid in RESAMPLED_GRIDS:
        resampled = timm.layers.resample_abs_pos_embed(model.pos_embed.detach(), new_size=[grid, grid],
                                                       num_prefix_tokens=prefix)
        expected[f"pos_embed.grid{grid}"] = resampled.contiguous()
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(out, f"variant_{case}.safetensors"), metadata={"format": "pt"})
    args = vitslim_args(preset, kwargs, extra, patch)
    save_file(expected, os.path.join(out, f"variant_{case}_expected.safetensors"),
              metadata={"args": " ".join(args), "timm_model": name, "timm": timm.__version__})


def costs():
    """Full-size parameter counts and matmul/conv multiply-adds (torch's FlopCounterMode / 2)."""
    from torch.utils.flop_counter import FlopCounterMode
    timm.layers.set_fused_attn(False)  # explicit q k^T and attn v matmuls, which the counter sees
    result = {}
    for preset, (name, classes) in COST_PRESETS.items():
        model = timm.create_model(name, pretrained=False, num_classes=classes).eval()
        size = model.patch_embed.img_size
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(torch.zeros(1, 3, *size))
        result[preset] = {"timm_model": name, "params": sum(p.numel() for p in model.parameters()),
                          "matmul_macs": counter.get_total_flops() // 2}
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=4321)
    ap.add_argument("--no-costs", action="store_true", help="skip the full-size cost figures")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for i, case in enumerate(CASES):
        write_case(args.out, case, args.seed + 10 * i)
    if not args.no_costs:
        with open(os.path.join(args.out, "variant_costs.json"), "w") as f:
            json.dump(costs(), f, indent=1)
    print(f"variant fixtures for {len(CASES)} cases written to {args.out} (timm {timm.__version__})")


if __name__ == "__main__":
    main()
