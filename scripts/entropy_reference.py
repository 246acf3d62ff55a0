#!/usr/bin/env python3
"""Reference entropies in PyTorch, for checking `vitslim entropy` (docs/method.md section 2).

Loads a vitslim/timm .safetensors export into timm's VisionTransformer, runs the given
Fashion-MNIST IDX split (all images) through it with forward hooks on every block's attention
and MLP branch, concatenates ALL rows (images x tokens) and computes sum_c ln(sigma_c) with the
population sigma in float64, as the reference code does after concatenating every batch.
Compares with a vitslim JSON summary; exit 1 on a relative difference above --rel-tol.
Usage: entropy_reference.py WEIGHTS.safetensors SUMMARY.json --images DIR/t10k-images-idx3-ubyte.gz
       entropy_reference.py --make-weights OUT.safetensors   (random vit_fmnist-shaped timm weights)
"""
import argparse
import gzip
import json
import os
import sys

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timm_compat import timm  # noqa: E402


def read_idx_images(path):
    raw = gzip.open(path).read() if path.endswith(".gz") else open(path, "rb").read()
    n, h, w = (int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(3))
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, 1, h, w)


def entropy(rows):
    x = torch.cat(rows).double()  # [rows, C], every calibration row at once
    return 0.5 * torch.log(x.var(dim=0, unbiased=False)).sum().item()


FMNIST_VIT = dict(img_size=28, patch_size=4, in_chans=1, embed_dim=64, depth=6, num_heads=4, num_classes=10)


def make_weights(path, seed=3):
    torch.manual_seed(seed)
    model = timm.models.vision_transformer.VisionTransformer(**FMNIST_VIT)
    with torch.no_grad():  # spread timm's tiny init so that every branch matters
        for name, p in model.named_parameters():
            p.copy_(1.0 + 0.2 * torch.randn_like(p) if "norm" in name and name.endswith("weight")
                    else 0.2 * torch.randn_like(p))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path,
              metadata={"vitslim.num_heads": str(FMNIST_VIT["num_heads"]),
                        "vitslim.img_size": str(FMNIST_VIT["img_size"])})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights")
    ap.add_argument("summary", nargs="?")
    ap.add_argument("--images")
    ap.add_argument("--rel-tol", type=float, default=1e-5)
    ap.add_argument("--make-weights", action="store_true")
    a = ap.parse_args()
    if a.make_weights:
        make_weights(a.weights)
        return
    if not a.summary or not a.images:
        ap.error("SUMMARY and --images are required")
    with safe_open(a.weights, "pt") as f:
        meta = f.metadata()
    state = load_file(a.weights)
    w = state["patch_embed.proj.weight"]
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    model = timm.models.vision_transformer.VisionTransformer(
        img_size=int(meta["vitslim.img_size"]), patch_size=w.shape[-1], in_chans=w.shape[1], embed_dim=w.shape[0],
        depth=depth, num_heads=int(meta["vitslim.num_heads"]), num_classes=state["head.weight"].shape[0]).eval()
    model.load_state_dict(state)
    summary = json.load(open(a.summary))
    mean, std = summary["data"]["mean"], summary["data"]["std"]
    images = torch.from_numpy(read_idx_images(a.images).copy()).float().div(255.0)
    images = (images - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
    if summary["calib_images"] != images.shape[0]:
        sys.exit(f"the summary covers {summary['calib_images']} images, the split has {images.shape[0]}")
    attn = [[] for _ in range(depth)]
    mlp = [[] for _ in range(depth)]
    for i, blk in enumerate(model.blocks):
        blk.attn.register_forward_hook(lambda m, inp, out, i=i: attn[i].append(out.reshape(-1, out.shape[-1])))
        blk.mlp.register_forward_hook(lambda m, inp, out, i=i: mlp[i].append(out.reshape(-1, out.shape[-1])))
    logits = []
    with torch.no_grad():
        for batch in images.split(500):
            logits.append(model(batch))
    errors = 0
    for b, block in enumerate(summary["blocks"]):
        for name, rows in (("attn", attn[b]), ("mlp", mlp[b])):
            ref, got = entropy(rows), block[f"{name}_entropy"]
            ok = abs(got - ref) <= a.rel_tol * abs(ref)
            errors += not ok
            print(f"block {b} {name}: pytorch {ref:.6f} vitslim {got:.6f} {'ok' if ok else 'MISMATCH'}")
    ref, got = entropy(logits), summary["head"]["entropy"]
    ok = abs(got - ref) <= a.rel_tol * abs(ref)
    errors += not ok
    print(f"head: pytorch {ref:.6f} vitslim {got:.6f} {'ok' if ok else 'MISMATCH'}")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
