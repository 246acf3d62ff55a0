#!/usr/bin/env bash
# scripts/run.sh: set up (scripts/setup.sh, idempotent) and run the main job on its embedded
# default: per-block entropy of attention vs MLP branches of a small ViT (preset vit_fmnist) over
# 2048 Fashion-MNIST training images from Debian's dataset-fashion-mnist package.
# Outputs: runs/entropy.h5 (HDF5 trace), runs/entropy.json (summary). Extra args go to vitslim.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
mkdir -p "$ROOT/runs"
"$ROOT/build/vitslim" entropy --calib-images 2048 --out "$ROOT/runs/entropy.h5" --json "$ROOT/runs/entropy.json" "$@"
