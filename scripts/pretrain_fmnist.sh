#!/usr/bin/env bash
# scripts/pretrain_fmnist.sh: reproduces a shipped Fashion-MNIST model of pretrained/ with vitslim's
# own train job: pretrained/vit_fmnist.safetensors, the converged vit_fmnist (6 blocks) that
# `vitslim pipeline` starts from, or pretrained/vit_fmnist12.safetensors, the same width at the
# paper's depth (12 blocks). Seed 0, AdamW at batch 128 on the 60,000 training images (light crop +
# flip + erasing, label smoothing, drop-path), evaluated on the 10,000 test images after every
# epoch; 30 epochs for vit_fmnist, 60 for vit_fmnist12 (a deeper model converges later).
# final.safetensors carries its provenance (settings, source commit, test top-1, tensor hash) in
# its metadata.
#   bash scripts/pretrain_fmnist.sh [--model vit_fmnist|vit_fmnist12] [--epochs N] [--out DIR]
#                                   [--install] [--check-convergence] [--smoke]
#     --model M   the preset (default vit_fmnist)
#     --epochs N  training epochs (default 30 for vit_fmnist, 60 for vit_fmnist12)
#     --out DIR   run directory, relative to the repository root (default runs/pretrain-fmnist for
#                 vit_fmnist, runs/pretrain-<model> otherwise; an interrupted run resumes there)
#     --install   copy final.safetensors and train.json (its paths made relative to the repository)
#                 into pretrained/<model>.* when the run finishes, with the per-epoch curve from
#                 train.h5 as pretrained/<model>.epochs.csv
#     --check-convergence  then 2 more epochs of the same recipe at its final learning rate
#                 (1e-5, seed 1) from final.safetensors into DIR/converged, and the top-1 gain: the
#                 model counts as converged when it is under 0.15 points
#     --smoke     2 short epochs (a test of the script, not a usable model)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Run from the repository root with a relative --out-dir, so that the provenance the checkpoint
# records (its settings) names no machine's path.
cd "$ROOT"
MODEL=vit_fmnist
OUT=""
EPOCHS=""
INSTALL=0
CHECK=0
SMOKE=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --model) MODEL="${2:-}"; shift 2 || { echo "pretrain_fmnist.sh: --model needs a value" >&2; exit 2; } ;;
    --epochs) EPOCHS="${2:-}"; shift 2 || { echo "pretrain_fmnist.sh: --epochs needs a value" >&2; exit 2; } ;;
    --out) OUT="${2:-}"; shift 2 || { echo "pretrain_fmnist.sh: --out needs a value" >&2; exit 2; } ;;
    --install) INSTALL=1; shift ;;
    --check-convergence) CHECK=1; shift ;;
    --smoke) SMOKE=1; shift ;;
    *) echo "pretrain_fmnist.sh: unknown argument $1 (see the header of this script)" >&2; exit 2 ;;
  esac
done
case "$MODEL" in
  vit_fmnist) DEFAULT_EPOCHS=30; OUT="${OUT:-runs/pretrain-fmnist}" ;;
  vit_fmnist12) DEFAULT_EPOCHS=60; OUT="${OUT:-runs/pretrain-$MODEL}" ;;
  *) echo "pretrain_fmnist.sh: --model $MODEL: only vit_fmnist and vit_fmnist12 are shipped" >&2; exit 2 ;;
esac
EPOCHS="${EPOCHS:-$DEFAULT_EPOCHS}"
if ! [[ "$EPOCHS" =~ ^[1-9][0-9]*$ ]]; then
  echo "pretrain_fmnist.sh: --epochs $EPOCHS is not a positive whole number" >&2
  exit 2
fi
LENGTH=(--epochs "$EPOCHS" --warmup-epochs 1)
[[ $SMOKE == 1 ]] && LENGTH=(--epochs 2 --warmup-epochs 1 --steps-per-epoch 5 --eval-images 200)
# The recipe; --lr is per 512 images (timm's scaling): 6e-3 is 1.5e-3 at batch 128.
RECIPE=(--model "$MODEL" --data-set fashion-mnist --threads 2 --batch-size 128 --weight-decay 0.05 --smoothing 0.1
  --mixup 0 --cutmix 0 --aug deit --aa none --scale 0.85,1 --ratio 0.9,1.1 --hflip 0.5 --reprob 0.1 --drop-path 0.05
  --entropy-images 0)
bash "$ROOT/scripts/setup.sh"
"$ROOT/build/vitslim" train "${RECIPE[@]}" --seed 0 "${LENGTH[@]}" --lr 6e-3 --min-lr 1e-5 --out-dir "$OUT" --resume
if [[ $INSTALL == 1 ]]; then
  mkdir -p "$ROOT/pretrained"
  cp "$OUT/final.safetensors" "$ROOT/pretrained/$MODEL.safetensors.tmp"
  mv "$ROOT/pretrained/$MODEL.safetensors.tmp" "$ROOT/pretrained/$MODEL.safetensors"
  # train.json with the paths under the repository made relative to it (no machine's path in git).
  "$ROOT/.venv/bin/python" - "$OUT/train.json" "$ROOT/pretrained/$MODEL.train.json" "$ROOT" <<'PYEOF'
import json, os, sys
source, target, root = sys.argv[1], sys.argv[2], os.path.realpath(sys.argv[3])
def relative(v):
    if isinstance(v, dict):
        return {k: relative(x) for k, x in v.items()}
    if isinstance(v, list):
        return [relative(x) for x in v]
    if isinstance(v, str) and os.path.isabs(v) and os.path.realpath(v).startswith(root + os.sep):
        return os.path.relpath(os.path.realpath(v), root)
    return v
with open(source) as f:
    j = relative(json.load(f))
with open(target + ".tmp", "w") as f:
    f.write(json.dumps(j, indent=2) + "\n")
os.replace(target + ".tmp", target)
PYEOF
  # The per-epoch curve (train loss, test top-1/top-5, test loss, seconds) from the run's train.h5.
  "$ROOT/.venv/bin/python" - "$OUT/train.h5" "$ROOT/pretrained/$MODEL.epochs.csv" <<'PYEOF'
import os
import sys
import h5py
with h5py.File(sys.argv[1], "r") as f:
    rows = f["/train/epoch"]
    columns = rows.attrs["columns"]
    columns = columns.decode() if isinstance(columns, bytes) else columns
    lines = [columns] + [",".join(f"{v:.6g}" for v in row) for row in rows[:]]
with open(sys.argv[2] + ".tmp", "w") as out:
    out.write("\n".join(lines) + "\n")
os.replace(sys.argv[2] + ".tmp", sys.argv[2])
PYEOF
  echo "installed pretrained/$MODEL.safetensors"
fi
if [[ $CHECK == 1 ]]; then
  # Two more epochs at the final learning rate (4e-5 per 512 images is 1e-5 at batch 128).
  MORE=(--epochs 2 --warmup-epochs 0)
  [[ $SMOKE == 1 ]] && MORE=(--epochs 2 --warmup-epochs 0 --steps-per-epoch 5 --eval-images 200)
  "$ROOT/build/vitslim" train "${RECIPE[@]}" --seed 1 "${MORE[@]}" --lr 4e-5 --min-lr 1e-5 \
    --weights "$OUT/final.safetensors" --out-dir "$OUT/converged" --resume
  "$ROOT/.venv/bin/python" - "$OUT/train.json" "$OUT/converged/train.json" <<'PYEOF'
import json, sys
before, after = (json.load(open(p))["last_top1"] for p in sys.argv[1:3])
gain = after - before
print(f"convergence: top-1 {before:.2f}% -> {after:.2f}% after 2 more epochs at the final learning rate "
      f"(gain {gain:+.2f} points; converged: {'yes' if gain < 0.15 else 'no'}, the rule is under 0.15)")
PYEOF
fi
