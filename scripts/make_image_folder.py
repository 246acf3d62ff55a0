#!/usr/bin/env python3
"""Builds an ImageNet-like folder of real JPEG photos for bench-data, the data tests and the
loader demonstration: windows of about 500x375 (ImageNet's typical size; a fifth are portrait
375x500) cut at random scales and places from the photos Debian's mate-backgrounds installs,
re-encoded at quality 90 (4:2:0, like most ImageNet files). Photos compress unlike noise, so
decode speed is representative. Layout: OUT/train/<class>/*.JPEG and OUT/val/<class>/*.JPEG,
one class per source photo. Deterministic for a seed.

usage: make_image_folder.py OUT [--train N] [--val N] [--classes K] [--seed S]
"""
import argparse
import glob
import os
import random
import sys

from PIL import Image

PHOTOS = "/usr/share/backgrounds/mate"
LONG, SHORT = 500, 375
PORTRAIT_SHARE = 0.2
QUALITY = 90


def photos():
    files = sorted(glob.glob(os.path.join(PHOTOS, "**", "*.jpg"), recursive=True))
    if not files:
        sys.exit(f"make_image_folder: no photos under {PHOTOS} (apt-get install mate-backgrounds)")
    # one per scene: skip the same photo at other resolutions (Elephants_3840x2160 ...)
    seen, unique = set(), []
    for f in files:
        stem = os.path.basename(f).split("_")[0].split(".")[0]
        if stem not in seen:
            seen.add(stem)
            unique.append(f)
    return unique


def cut(photo, rng):
    w, h = (SHORT, LONG) if rng.random() < PORTRAIT_SHARE else (LONG, SHORT)
    # scale the photo so the window covers between a fifth and all of its shorter side
    shorter = min(photo.size)
    target_short = rng.uniform(min(w, h) * 1.0, min(w, h) * 5.0)
    scale = min(1.0, target_short / shorter)
    scale = max(scale, max(w / photo.size[0], h / photo.size[1]))
    scaled = photo.resize((max(w, round(photo.size[0] * scale)), max(h, round(photo.size[1] * scale))),
                          Image.BICUBIC)
    x = rng.randint(0, scaled.size[0] - w)
    y = rng.randint(0, scaled.size[1] - h)
    return scaled.crop((x, y, x + w, y + h))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--train", type=int, default=256, help="training images in all")
    ap.add_argument("--val", type=int, default=64, help="validation images in all")
    ap.add_argument("--classes", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    sources = photos()[: a.classes]
    if len(sources) < a.classes:
        sys.exit(f"make_image_folder: only {len(sources)} distinct photos for --classes {a.classes}")
    rng = random.Random(a.seed)
    loaded = [Image.open(f).convert("RGB") for f in sources]
    for split, count in (("train", a.train), ("val", a.val)):
        for i in range(count):
            k = i % a.classes
            cls = f"n{k:08d}"
            d = os.path.join(a.out, split, cls)
            os.makedirs(d, exist_ok=True)
            path = os.path.join(d, f"{cls}_{i:05d}.JPEG")
            if not os.path.exists(path):
                cut(loaded[k], rng).save(path, "JPEG", quality=QUALITY)
    print(f"{a.out}: {a.train} train / {a.val} val JPEGs in {a.classes} classes from {PHOTOS}")


if __name__ == "__main__":
    main()
