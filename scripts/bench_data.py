#!/usr/bin/env python3
"""Input pipeline benchmark, vitslim against the fastest Python peer in one run: timm's DeiT
transforms (create_transform: RandomResizedCrop bicubic, flip, RandAugment rand-m9-mstd0.5-inc1,
ToTensor, Normalize, RandomErasing 0.25 pixel) on torchvision 0.29 + Pillow-SIMD, against
`vitslim bench-data` on the same files. Both sides: one thread, the file read each time (page
cache warm), best of N rounds. Images/s and the ratio per core are printed side by side.

Runs under the peer environment (scripts/peer_env.sh makes it); bench_data.sh does all of it.
usage: bench_data.py --vitslim build/vitslim --images DIR [--count 256] [--rounds 3] [--json OUT]
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

import torch
from PIL import Image, features

import timm
from timm.data import create_transform

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def image_files(root, count):
    files = sorted(f for f in glob.glob(os.path.join(root, "**", "*"), recursive=True)
                   if f.lower().endswith((".jpg", ".jpeg", ".png")))
    if not files:
        sys.exit(f"bench_data: no images under {root}")
    return files[:count]


def load(path):
    # timm / torchvision ImageFolder's loader
    with open(path, "rb") as f:
        img = Image.open(f)
        return img.convert("RGB")


def best_rate(files, rounds, fn):
    best = 0.0
    for _ in range(rounds):
        t = time.perf_counter()
        for f in files:
            fn(f)
        best = max(best, len(files) / (time.perf_counter() - t))
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vitslim", required=True)
    ap.add_argument("--images", required=True)
    ap.add_argument("--count", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(1)
    files = image_files(a.images, a.count)
    train = create_transform(a.size, is_training=True, auto_augment="rand-m9-mstd0.5-inc1", interpolation="bicubic",
                             re_prob=0.25, re_mode="pixel", re_count=1, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    evaluate = create_transform(a.size, is_training=False, interpolation="bicubic", crop_pct=0.875,
                                mean=IMAGENET_MEAN, std=IMAGENET_STD)
    for f in files:  # warm the page cache and check every file decodes
        load(f).load()
    peer = {
        "decode_per_s": best_rate(files, a.rounds, lambda f: load(f).load()),
        "train_per_s": best_rate(files, a.rounds, lambda f: train(load(f))),
        "eval_per_s": best_rate(files, a.rounds, lambda f: evaluate(load(f))),
    }
    with tempfile.TemporaryDirectory() as tmp:
        result = os.path.join(tmp, "vitslim.json")
        subprocess.run([a.vitslim, "bench-data", "--data-path", a.images, "--images", str(len(files)),
                        "--rounds", str(a.rounds), "--img-size", str(a.size), "--threads", "1", "--workers", "1",
                        "--json", result, "--quiet"], check=True, stdout=subprocess.DEVNULL)
        with open(result) as f:
            ours = json.load(f)
    pil = f"Pillow-SIMD {Image.__version__}" if "post" in Image.__version__ else f"Pillow {Image.__version__}"
    print(f"input pipeline, {len(files)} images from {a.images}, {a.size}x{a.size}, one thread, best of {a.rounds}")
    print(f"peer: timm {timm.__version__} transforms, torchvision + {pil} (libjpeg-turbo {features.version('jpg')}),"
          f" torch {torch.__version__}")
    print(f"{'':34s}{'vitslim':>10s}{'peer':>10s}{'ratio':>8s}")
    rows = {}
    for key, label in (("decode_per_s", "read + decode (images/s)"), ("train_per_s", "DeiT train transform (images/s)"),
                       ("eval_per_s", "eval transform (images/s)")):
        ratio = ours[key] / peer[key]
        rows[key] = {"vitslim": ours[key], "peer": peer[key], "ratio": ratio}
        print(f"{label:34s}{ours[key]:10.1f}{peer[key]:10.1f}{ratio:7.2f}x")
    print(f"goal: train transform >= 2x per core: {'met' if rows['train_per_s']['ratio'] >= 2 else 'NOT met'}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"images": len(files), "peer": pil, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
