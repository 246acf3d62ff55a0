#!/usr/bin/env python3
"""Evaluates a vitslim .safetensors export in PyTorch (timm's VisionTransformer built from the
file's metadata, scripts/vit_modes.py) on the first N Fashion-MNIST test images and compares with
`vitslim eval --json` on the same images: the same top-1 count and the mean cross-entropy within
--tol. This is how a user loads a compact (optionally folded) model without vitslim.

Usage: eval_export.py MODEL.safetensors --vitslim-json eval.json [--images 500]
       [--data /usr/share/datasets/fashion-mnist] [--tol 1e-5]
"""
import argparse
import gzip
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vit_modes import forward_with_modes, load_export  # noqa: E402

FMNIST_MEAN, FMNIST_STD = 0.2860, 0.3530  # vitslim's defaults for fashion-mnist


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def find(directory, stem):
    for name in (stem + ".gz", stem):
        if os.path.exists(os.path.join(directory, name)):
            return os.path.join(directory, name)
    sys.exit(f"{directory}: no {stem}[.gz]")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--vitslim-json", required=True)
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--tol", type=float, default=1e-5)
    a = ap.parse_args()
    model, modes, folded = load_export(a.model)
    images = read_idx(find(a.data, "t10k-images-idx3-ubyte"))[: a.images]
    labels = torch.from_numpy(read_idx(find(a.data, "t10k-labels-idx1-ubyte"))[: a.images].astype(np.int64))
    x = (torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1) - FMNIST_MEAN) / FMNIST_STD  # [N, 1, 28, 28]
    with torch.no_grad():
        logits = forward_with_modes(model, x, modes, folded)
    loss = torch.nn.functional.cross_entropy(logits.double(), labels).item()
    top1 = int((logits.argmax(1) == labels).sum())
    ref = json.load(open(a.vitslim_json))
    print(f"{a.model}: PyTorch top-1 {top1}/{a.images}, loss {loss:.6f}; vitslim {ref['top1_correct']}/{ref['images']}, "
          f"loss {ref['loss']:.6f} (folded {folded})")
    if ref["images"] != a.images or ref["top1_correct"] != top1 or abs(ref["loss"] - loss) > a.tol:
        sys.exit("FAIL: PyTorch and vitslim disagree on this export")


if __name__ == "__main__":
    main()
