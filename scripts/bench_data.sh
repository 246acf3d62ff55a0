#!/usr/bin/env bash
# scripts/bench_data.sh: the input pipeline benchmark in one command.
#   1. an ImageNet-like folder of real photos (make_image_folder.py: about 500x375, quality 90,
#      cut from Debian's mate-backgrounds) in build/bench-images (kept between runs);
#   2. the peer environment (peer_env.sh: torch 2.14.1 + torchvision 0.29.1 + Pillow-SIMD + timm);
#   3. bench_data.py: vitslim bench-data beside timm's DeiT transforms on Pillow-SIMD, one thread
#      each, images/s and ratios;
#   4. whether the loader keeps a CPU training step fed: DeiT-Ti trains on that folder with the
#      DeiT augmentation (2 compute threads, 1 loader thread on this machine's cores) and the
#      per-step wait for data is read back from train.h5.
# Usage: scripts/bench_data.sh [--images N] [--train-steps N]   (defaults 256 and 16)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGES=256
STEPS=16
while [[ $# -gt 0 ]]; do
  case "$1" in
    --images) IMAGES="$2"; shift 2 ;;
    --train-steps) STEPS="$2"; shift 2 ;;
    *) echo "usage: $0 [--images N] [--train-steps N]" >&2; exit 2 ;;
  esac
done
BIN="$ROOT/build/vitslim"
[[ -x "$BIN" ]] || { echo "bench_data: build first (bash scripts/setup.sh)" >&2; exit 1; }
DIR="$ROOT/build/bench-images"
"$ROOT/.venv/bin/python" "$ROOT/scripts/make_image_folder.py" "$DIR" --train "$IMAGES" --val 64 --classes 8 >/dev/null
PEER="$(bash "$ROOT/scripts/peer_env.sh")"
"$PEER" "$ROOT/scripts/bench_data.py" --vitslim "$BIN" --images "$DIR/train" --count "$IMAGES" \
  --json "$ROOT/build/bench_data.json"

echo
echo "loader feeding a CPU training step: DeiT-Ti, batch 32, DeiT augmentation, 1 loader thread"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
PER_EPOCH=$(( IMAGES / 32 ))
EPOCHS=$(( (STEPS + PER_EPOCH - 1) / PER_EPOCH ))
"$BIN" train --model deit_tiny --num-classes 8 --data-set imagenet --data-path "$DIR" --batch-size 32 \
  --epochs "$EPOCHS" --warmup-epochs 0 --eval-images 32 --entropy-images 0 --workers 1 \
  --threads 2 --out-dir "$OUT/run" --quiet
"$ROOT/.venv/bin/python" - "$OUT/run/train.h5" "$PER_EPOCH" <<'PYEOF'
import sys

import h5py
import numpy as np

with h5py.File(sys.argv[1], "r") as f:
    columns = f["/train/step"].attrs["columns"]
    columns = columns.decode() if isinstance(columns, bytes) else str(columns)
    names = columns.split(",")
    rows = f["/train/step"][:]
PER_EPOCH = int(sys.argv[2])
data = rows[:, names.index("data_seconds")]
rate = rows[:, names.index("images_per_s")]
step = 32 / rate
# the first step of each epoch waits for the loader's first batch: report the steady state
steady = [i for i in range(len(rows)) if i % PER_EPOCH != 0]
data, step = data[steady], step[steady]
print(f"{len(rows)} steps, steady state ({len(steady)} steps): median step {np.median(step):.3f} s, median wait for data "
      f"{np.median(data) * 1000:.1f} ms ({100 * np.median(data / step):.2f}% of the step), max wait {data.max() * 1000:.1f} ms")
PYEOF
