#!/usr/bin/env python3
# Benchmark helper: an ImageNet-shaped image tree and torchvision's scan of it, as the baseline
# for vitslim's folder index.
#   make: DIR/train/n%08d/<class>_<i>.JPEG, --images files over --classes folders (as even as can
#         be), and DIR/val/n%08d/ with --val-per-class links each (a training job evaluates on
#         val/). Each class writes one tiny distinct JPEG (32x24 solid colour, class in its
#         comment) and hard-links the rest of its files to it, so 1.28M files cost ~1000 inodes. Idempotent:
#         DIR/.complete records the parameters; a tree left half-made (DIR/.incomplete) is redone.
#   scan: best-of---repeat time of torchvision.datasets.ImageFolder(root) construction (its real
#         find_classes + make_dataset directory scan), printed as one JSON line.
# torchvision: the project venv has CPU torch 2.13.0 and no torchvision. ensure_torchvision()
# installs torchvision 0.28.0 (the release paired with torch 2.13) into a folder of its own,
#   <python> -m pip install --no-deps --target .venv/extras/torchvision-0.28.0 torchvision==0.28.0
# (pip's configured local index serves the wheel; nothing large is downloaded), leaving the venv
# itself without torchvision (timm is installed there without it on purpose). That wheel is the
# CUDA build: `import torchvision` fails with the CPU torch (its _C ops library needs
# libtorch_cuda), so the scan then loads torchvision/datasets/folder.py, unmodified, without
# running torchvision/__init__.py. A CPU build, where one is installed, is imported normally.
#   python scripts/imagenet_tree.py make --root /tmp/imagenet_tree
#   python scripts/imagenet_tree.py scan --root /tmp/imagenet_tree/train --repeat 3
import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TORCHVISION = "torchvision==0.28.0"
TORCHVISION_DIR = REPO / ".venv" / "extras" / "torchvision-0.28.0"
MAX_LINKS = 60000  # below ext4's 65000 links per inode: a class past it writes a fresh JPEG


def tiny_jpeg(k):
    from PIL import Image

    colour = ((k * 37) % 256, (k * 91 + 64) % 256, (k * 151 + 128) % 256)
    out = io.BytesIO()
    Image.new("RGB", (32, 24), colour).save(out, "JPEG", quality=90, comment=f"class {k}".encode())
    return out.getvalue()


def make(root, images, classes, val_per_class):
    root = Path(root)
    params = json.dumps({"images": images, "classes": classes, "val_per_class": val_per_class})
    done, partial, train, val = root / ".complete", root / ".incomplete", root / "train", root / "val"
    if done.exists() and done.read_text() == params:
        print(f"imagenet_tree make: {train} already has {images} images in {classes} classes")
        return 0
    if train.exists() and not (done.exists() or partial.exists()):
        sys.exit(f"imagenet_tree make: {train} exists and was not made by this script; not touching it")
    start = time.perf_counter()
    root.mkdir(parents=True, exist_ok=True)
    partial.write_text(params)
    done.unlink(missing_ok=True)
    for split in (train, val):
        if split.exists():
            shutil.rmtree(split)
    per, extra = divmod(images, classes)
    for k in range(classes):
        name = f"n{k:08d}"
        (train / name).mkdir(parents=True)
        fd = os.open(train / name, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for i in range(per + (k < extra)):
                dst = f"{name}_{i}.JPEG"
                if i % MAX_LINKS == 0:
                    seed = dst
                    with open(os.open(seed, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=fd), "wb") as f:
                        f.write(tiny_jpeg(k))
                else:
                    os.link(seed, dst, src_dir_fd=fd, dst_dir_fd=fd)
        finally:
            os.close(fd)
        (val / name).mkdir(parents=True)
        for i in range(val_per_class):
            os.link(train / name / f"{name}_0.JPEG", val / name / f"{name}_val_{i}.JPEG")
    done.write_text(params)
    partial.unlink()
    seconds = time.perf_counter() - start
    print(f"imagenet_tree make: {images} images in {classes} classes under {train} in {seconds:.1f} s")
    return 0


def ensure_torchvision(python, target=TORCHVISION_DIR):
    """Install torchvision 0.28.0 for `python` into `target` (not its site-packages); returns target."""
    target = Path(target)
    if not list(target.glob("torchvision-*.dist-info")):
        cmd = [str(python), "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), TORCHVISION]
        print("imagenet_tree: " + " ".join(cmd), file=sys.stderr)
        subprocess.run(cmd, check=True)
    return target


# Runs under the chosen interpreter: argv = torchvision dir, root, repeat.
SCAN = r"""
import importlib, importlib.metadata, json, sys, time, types
target, root, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path.insert(0, target)
try:
    from torchvision.datasets import ImageFolder
    how = "import torchvision"
except Exception as err:  # CUDA wheel, CPU torch: load the package's datasets/folder.py alone
    for name in [m for m in sys.modules if m.split(".")[0] == "torchvision"]:
        del sys.modules[name]
    for name, sub in (("torchvision", ""), ("torchvision.datasets", "/datasets")):
        stub = types.ModuleType(name)
        stub.__path__ = [target + "/torchvision" + sub]
        sys.modules[name] = stub
    ImageFolder = importlib.import_module("torchvision.datasets.folder").ImageFolder
    how = f"torchvision/datasets/folder.py alone (import torchvision: {type(err).__name__})"
best = None
for _ in range(repeat):
    t = time.perf_counter()
    ds = ImageFolder(root)
    t = time.perf_counter() - t
    best = t if best is None else min(best, t)
import torch
print(f"imagenet_tree scan: torch {torch.__version__}, {how}, from {sys.modules[ImageFolder.__module__].__file__}",
      file=sys.stderr)
print(json.dumps({"tool": "torchvision.datasets.ImageFolder", "version": importlib.metadata.version("torchvision"),
                  "images": len(ds.samples), "classes": len(ds.classes), "seconds": round(best, 4)}))
"""


def scan(root, repeat, python, target):
    target = ensure_torchvision(python, target)
    return subprocess.run([str(python), "-c", SCAN, str(target), str(root), str(repeat)]).returncode


def main():
    venv_python = REPO / ".venv" / "bin" / "python"
    p = argparse.ArgumentParser(description="ImageNet-shaped tree and torchvision's scan of it")
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make", help="make DIR/train/<class>/<class>_<i>.JPEG of hard links")
    m.add_argument("--root", required=True)
    m.add_argument("--images", type=int, default=1281167)
    m.add_argument("--classes", type=int, default=1000)
    m.add_argument("--val-per-class", type=int, default=1)
    s = sub.add_parser("scan", help="time torchvision.datasets.ImageFolder(root)")
    s.add_argument("--root", required=True, help="the class folders' parent, e.g. DIR/train")
    s.add_argument("--repeat", type=int, default=3)
    s.add_argument("--python", default=str(venv_python if venv_python.exists() else sys.executable),
                   help="interpreter with torch (default: the project venv's)")
    s.add_argument("--torchvision-dir", default=str(TORCHVISION_DIR), help="where torchvision is installed")
    args = p.parse_args()
    if args.cmd == "make":
        if args.classes < 1 or args.images < args.classes:
            sys.exit("imagenet_tree make: need --classes >= 1 and --images >= --classes")
        return make(args.root, args.images, args.classes, args.val_per_class)
    return scan(args.root, args.repeat, args.python, args.torchvision_dir)


if __name__ == "__main__":
    sys.exit(main())
