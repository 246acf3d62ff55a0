#!/usr/bin/env bash
# scripts/reproduce_fmnist.sh: the Fashion-MNIST study of docs/results.md, in one command:
# `vitslim pipeline --seeds 3` from the shipped converged vit_fmnist (pretrained/), i.e. for each of
# seeds 0, 1, 2 the unpruned model, NOSE at 25% and 50%, NOSE 50% with distillation from the
# starting weights, and cosine, random and first-k at 50%; then the figures. It prints the report
# (mean ± std and every seed per row, each claim against the noise) with the date, the commit and
# the CPU. An interrupted study resumes where it stopped; extra args go to `vitslim pipeline`.
#   bash scripts/reproduce_fmnist.sh [--out-dir DIR] [pipeline flags...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/runs/reproduce-fmnist"
ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out-dir) OUT="$2"; shift 2 ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
bash "$ROOT/scripts/setup.sh"
start=$(date +%s)
"$ROOT/build/vitslim" pipeline --seeds 3 --out-dir "$OUT" "${ARGS[@]}"
"$ROOT/.venv/bin/python" "$ROOT/scripts/plot_pipeline.py" "$OUT"
cpu=$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
echo "reproduce_fmnist: $(( $(date +%s) - start )) s on $(nproc) core(s) of ${cpu:-an unknown CPU}," \
  "$(date -u +%Y-%m-%d), commit $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown);" \
  "report in $OUT/report.md"
