#!/usr/bin/env bash
# scripts/run.sh: set up (scripts/setup.sh, idempotent) and run the main job on its embedded
# default: `vitslim pipeline` on Debian's Fashion-MNIST (preset vit_fmnist). It pretrains the ViT,
# measures branch entropies, runs the NOSE search for 25% and 50% removal, fine-tunes with dilution
# (plus the unpruned baseline and a random and a first-k ablation), merges, evaluates, benchmarks,
# and writes runs/pipeline/report.md and report.json. The figures come from
# scripts/plot_pipeline.py. An interrupted run resumes where it stopped; extra args go to vitslim.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
mkdir -p "$ROOT/runs"
"$ROOT/build/vitslim" pipeline --out-dir "$ROOT/runs/pipeline" "$@"
"$ROOT/.venv/bin/python" "$ROOT/scripts/plot_pipeline.py" "$ROOT/runs/pipeline"
