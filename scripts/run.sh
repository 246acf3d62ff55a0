#!/usr/bin/env bash
# scripts/run.sh: set up (scripts/setup.sh, idempotent) and run the main job on its embedded
# default: `vitslim pipeline` on Debian's Fashion-MNIST (preset vit_fmnist), from the shipped
# converged checkpoint. It measures branch entropies, runs the NOSE search for 25% and 50% removal,
# fine-tunes with dilution (NOSE at both ratios, a random 50% ablation and the unpruned baseline),
# merges, evaluates, benchmarks, tunes ToMe, plans against a 1.2x target, and writes
# runs/pipeline/report.md and report.json. The figures come from scripts/plot_pipeline.py. The
# full 7-row study (plus cosine and first-k at 50%, and NOSE 50% with distillation, 3 seeds) is
# scripts/reproduce_fmnist.sh. An interrupted run resumes where it stopped; extra args go to vitslim.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
mkdir -p "$ROOT/runs"
"$ROOT/build/vitslim" pipeline --criteria random --distill none --out-dir "$ROOT/runs/pipeline" "$@"
"$ROOT/.venv/bin/python" "$ROOT/scripts/plot_pipeline.py" "$ROOT/runs/pipeline"
