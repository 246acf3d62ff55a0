#!/usr/bin/env bash
# scripts/reproduce_budget.sh: how much fine-tuning the removal needs, and whether depth matters
# (docs/results.md, "Fine-tuning budget"). For vit_fmnist (6 blocks) and vit_fmnist12 (12 blocks), each from
# its shipped converged checkpoint in pretrained/, `vitslim pipeline` fine-tunes the unpruned model,
# NOSE 50% and random 50% at budgets of 2, 6 and 18 epochs, the attention diluting over the first
# half of each budget (3 seeds at 2 epochs, 1 above); at 18 epochs vit_fmnist12 also gets NOSE at
# 25%, 33% and 67%. Nothing else of the pipeline runs (no distillation row, ToMe or plan stage).
#
# Stages, in order (each a pipeline in runs/budget/<stage>/, itself resumable):
#   fmnist-e2 fmnist-e6 fmnist-e18 fmnist12-e2 fmnist12-e6 fmnist12-e18
# A finished stage's report.json is copied to results/budget/<stage>.json (tracked in git: commit
# it as each stage completes); a stage whose copy is there is not run again. After every stage
# scripts/plot_budget.py rewrites results/budget/summary.md and docs/figures/budget.png from the
# copies.
#   bash scripts/reproduce_budget.sh [--stage NAME]... [--list] [--smoke] [pipeline flags...]
#     --stage NAME  run only these stages (default: every stage not finished yet, in order)
#     --list        print the stages and whether each is finished; run nothing
#     --smoke       a few steps per epoch into runs/budget-smoke/ and results/budget-smoke/ (a
#                   test of the script, not a result)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
ALL=(fmnist-e2 fmnist-e6 fmnist-e18 fmnist12-e2 fmnist12-e6 fmnist12-e18)
STAGES=()
LIST=0
SMOKE=0
EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --stage)
      [[ $# -ge 2 ]] || { echo "reproduce_budget.sh: --stage needs a name (${ALL[*]})" >&2; exit 2; }
      [[ " ${ALL[*]} " == *" $2 "* ]] || { echo "reproduce_budget.sh: --stage $2: not one of ${ALL[*]}" >&2; exit 2; }
      STAGES+=("$2"); shift 2 ;;
    --list) LIST=1; shift ;;
    --smoke) SMOKE=1; shift ;;
    *) EXTRA+=("$1"); shift ;;
  esac
done
[[ ${#STAGES[@]} -gt 0 ]] || STAGES=("${ALL[@]}")
RUNS=runs/budget
RESULTS=results/budget
FIGURE=docs/figures/budget.png
SHORT=()
if [[ $SMOKE == 1 ]]; then
  RUNS=runs/budget-smoke
  RESULTS=results/budget-smoke
  FIGURE=$RESULTS/budget.png
  SHORT=(--steps-per-epoch 3 --eval-images 200 --bench-iters 1 --batch-size 16)
fi

# The settings of a stage: model, budget (epochs), seeds, ratios.
stage_args() {
  local name="$1" model epochs seeds=1 ratios=0.5
  model="vit_${name%-e*}"
  epochs="${name##*-e}"
  [[ $epochs == 2 ]] && seeds=3
  [[ $name == fmnist12-e18 ]] && ratios=0.25,0.33,0.5,0.67
  local decay
  decay=$(awk -v e="$epochs" 'BEGIN { printf "%g", e / 2 }')
  echo --model "$model" --finetune-epochs "$epochs" --decay-epochs "$decay" --seeds "$seeds" --ratios "$ratios" \
    --compare-ratio 0.5 --criteria random --distill none --tome-rows=false --plan-target-speedup 0
}

if [[ $LIST == 1 ]]; then
  for s in "${ALL[@]}"; do
    if [[ -s "$RESULTS/$s.json" ]]; then echo "$s finished ($RESULTS/$s.json)"; else echo "$s to run"; fi
  done
  exit 0
fi

bash "$ROOT/scripts/setup.sh"
mkdir -p "$RUNS" "$RESULTS"
for s in "${STAGES[@]}"; do
  if [[ -s "$RESULTS/$s.json" ]]; then
    echo "reproduce_budget: $s finished earlier ($RESULTS/$s.json)"
    continue
  fi
  model="vit_${s%-e*}"
  if [[ ! -s "pretrained/$model.safetensors" ]]; then
    echo "reproduce_budget: pretrained/$model.safetensors is missing: make it with" \
      "bash scripts/pretrain_fmnist.sh --model $model --install" >&2
    exit 1
  fi
  echo "reproduce_budget: stage $s"
  start=$(date +%s)
  # shellcheck disable=SC2046  # stage_args prints words without blanks inside them
  "$ROOT/build/vitslim" pipeline $(stage_args "$s") "${SHORT[@]}" "${EXTRA[@]}" --out-dir "$RUNS/$s"
  # The report, with the stage's wall time, copied atomically.
  "$ROOT/.venv/bin/python" - "$RUNS/$s/report.json" "$RESULTS/$s.json" "$s" "$(( $(date +%s) - start ))" <<'PYEOF'
import json, os, sys
source, target, stage, seconds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
with open(source) as f:
    report = json.load(f)
report["budget_stage"] = {"name": stage, "wall_seconds_last_run": seconds}
with open(target + ".tmp", "w") as f:
    f.write(json.dumps(report, indent=1) + "\n")
os.replace(target + ".tmp", target)
PYEOF
  echo "reproduce_budget: $s done; commit $RESULTS/$s.json"
  "$ROOT/.venv/bin/python" "$ROOT/scripts/plot_budget.py" "$RESULTS" --figure "$FIGURE"
done
