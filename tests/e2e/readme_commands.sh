#!/usr/bin/env bash
# Every command that README.md and docs/*.md show in ```bash blocks, run in a short mode, so that no
# documented command breaks silently. The commands are parsed from the Markdown (lines ending in \
# joined, trailing `# comments` stripped, blank lines and comments skipped) and looked up, after
# whitespace normalisation, in the table below, which gives the short command run in its place.
# A documented command without a table entry fails with its text (give it a short mode), and so does
# a table entry whose command is no longer documented (stale table).
#
# The short commands run in a stand-in repository root in the scratch directory, so that they read
# like the documented ones (build/vitslim, .venv/bin/python scripts/..., bash scripts/...). It holds
# a copy of the sources, build/ with links to the binaries under test ($VITSLIM_BIN and its
# siblings), .venv linked to the project environment ($VITSLIM_PYTHON), and stand-ins for what
# cannot exist here: deit_*.pth/.safetensors are timm's full-size state dicts (random weights) from
# make_test_checkpoints.py, cifar-100-binary/ (also c100/) a few CIFAR-100 binary records, imagenet/
# the ImageNet-1k folder layout (1000 wnid classes) over real JPEG photos (make_image_folder.py).
# setup.sh runs with cmake, apt-get and sudo replaced by recorders (the build is the one under test;
# pip cannot install anything), sbatch is a recorder that hands out job ids, mpirun -np N becomes
# $MPIEXEC -np 2, and --device cuda must either run (a CUDA build with a GPU) or be refused the
# documented way. Entries run in table order; later ones use what earlier ones wrote (search.json,
# runs/train, runs/c100).
# Prints `ok <command>` or `FAIL <command>` per documented command and ends with `N passed, M failed`.
# Environment (from ctest): VITSLIM_BIN, VITSLIM_PYTHON, VITSLIM_TEST_DATA, VITSLIM_SCRIPTS, MPIEXEC.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/tests/common.sh"
set +e  # a failing command is counted, not fatal
: "${VITSLIM_TEST_DATA:?}" "${VITSLIM_SCRIPTS:?}" "${MPIEXEC:?}"
export OMPI_MCA_rmaps_base_oversubscribe="${OMPI_MCA_rmaps_base_oversubscribe:-1}"
BUILD="$(cd "$(dirname "$BIN")" && pwd)"
DATA="$VITSLIM_TEST_DATA"
REPO="$WORK/repo"
STUBS="$WORK/stubs"

# ---- the documented commands ---------------------------------------------------------------------
# Prints FILE<TAB>COMMAND for every command line of every ```bash block, in document order.
documented_commands() {
  "$PY" - "$ROOT" <<'PYEOF'
import glob, os, re, sys
root = sys.argv[1]


def strip_comment(line):
    """The line without its `# comment`: a # at the start or after a blank, outside quotes."""
    quote = None
    for i, c in enumerate(line):
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


files = ["README.md", "pretrained/README.md"] + sorted(
    os.path.relpath(p, root) for p in glob.glob(os.path.join(root, "docs", "*.md")))
for name in files:
    in_block, pending = False, ""
    with open(os.path.join(root, name), encoding="utf-8") as f:
        for raw in f:
            text = raw.strip()
            if not in_block:
                in_block = re.fullmatch(r"```\s*bash\b.*", text) is not None
                continue
            if text.startswith("```"):
                in_block, pending = False, ""
                continue
            line = (pending + " " + text).strip()
            if line.endswith("\\"):
                pending = line[:-1]
                continue
            pending = ""
            command = " ".join(strip_comment(line).split())
            if command:
                print(f"{name}\t{command}")
PYEOF
}
norm() { local s; s="$(printf '%s' "$1" | tr -s ' \t\n' ' ')"; s="${s# }"; printf '%s' "${s% }"; }

# ---- helpers the short commands use --------------------------------------------------------------
note() { echo "$*" >>"$NOTES"; }
newest_checkpoint() { ls "$1"/checkpoints/step-*.safetensors | tail -n 1; }
# setup.sh with the package manager and the build replaced by recorders; pip cannot install anything.
with_stubs() {
  PATH="$STUBS:$PATH" PIP_NO_INDEX=1 PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS="$WORK/no-wheels" "$@" || return
  if [[ -s "$WORK/apt.log" ]]; then
    note "setup.sh asked apt-get for: $(tr '\n' ' ' <"$WORK/apt.log")"
    : >"$WORK/apt.log"
  fi
}
# A --device cuda command: a CUDA build with a GPU runs it; any other build must refuse it with the
# documented one-line error (docs/jobs.md, Evaluate and benchmark: "they refuse with a clear error").
cuda_or_refused() {
  local rc=0
  "$@" 2>"$WORK/cuda.err" || rc=$?
  cat "$WORK/cuda.err" >&2
  ((rc == 0)) && return 0
  ((rc == 1)) && grep -q -- "error.*--device cuda: this vitslim is built against a CPU LibTorch" "$WORK/cuda.err" || return 1
  note "--device cuda refused as documented (no CUDA device for this build)"
}
# The GPU kit where there is no GPU: its preflight stops with one line naming what is missing (the
# driver here); on a GPU machine it would build and run every check (tests/e2e/gpu_smoke.sh runs the
# checks themselves on the CPU).
smoke_preflight() {
  local rc=0
  VITSLIM_SMOKE_OUT="$WORK/smoke" bash scripts/gpu_smoke.sh >"$WORK/smoke.txt" 2>&1 || rc=$?
  cat "$WORK/smoke.txt" >&2
  ((rc == 0)) && return 0
  grep -q "^FAIL preflight: " "$WORK/smoke.txt" || return 1
  note "gpu_smoke.sh stopped in its preflight: $(grep -m1 '^FAIL preflight' "$WORK/smoke.txt")"
}
same_selections() {
  "$PY" -c "import json, sys; a, b = (json.load(open(f))['selections'] for f in sys.argv[1:]); assert a == b, (a, b)" "$@"
}
# `train ... --resume`: a run stopped by SIGTERM after its first checkpoint, then resumed to the end.
stop_and_resume() {
  local pid
  "$@" &
  pid=$!
  wait_for_file "$pid" "runs/resume/checkpoints/step-*.safetensors"
  kill -TERM "$pid" 2>/dev/null || true  # (or it has finished already)
  wait "$pid"
  "$@" --resume
  "$PY" -c "import json; j = json.load(open('runs/resume/train.json')); assert j['finished'], j"
}
# `bash scripts/test.sh ARGS` (docs/testing.md): what it selects, listed by ctest (-N, nothing runs), in
# the copy of the build's CTestTestfile.cmake tree; prints the list for the caller's checks.
test_sh_list() {
  ctest_tree
  with_stubs env VITSLIM_BUILD_DIR="$WORK/ctest" bash scripts/test.sh -N "$@" >"$WORK/ctest-list.txt"
  grep -q "Total Tests: [1-9]" "$WORK/ctest-list.txt"
  sed -n 's/^ *Test *#[0-9]*: \([^ ]*\)$/\1/p' "$WORK/ctest-list.txt"
}
# `vitslim-launch runs/c100.ini` (mode = sbatch): submitted to a recording sbatch; three stages, each
# after the one before (afterok on the job id sbatch returned), every script valid bash.
submit_recorded() {
  PATH="$WORK/slurm:$PATH" "$@" | tee "$WORK/submitted.txt"
  [[ $(grep -c . "$WORK/sbatch.log") -eq 3 ]]
  sed -n 2p "$WORK/sbatch.log" | grep -q -- "--dependency=afterok:1001 "
  sed -n 3p "$WORK/sbatch.log" | grep -q -- "--dependency=afterok:1002 "
  for script in $(awk '{print $NF}' "$WORK/sbatch.log"); do bash -n "$script"; done
}
# `bash scripts/test.sh`: the suite as ctest sees it (-N), then its first unit test run through
# test.sh, in a copy of the build's CTestTestfile.cmake tree (the real build directory is not touched).
ctest_tree() {
  [[ -d "$WORK/ctest" ]] && return
  (cd "$BUILD" && find . -name CTestTestfile.cmake) | while read -r f; do
    mkdir -p "$WORK/ctest/$(dirname "$f")" && cp "$BUILD/$f" "$WORK/ctest/$f"
  done
}
test_sh_short() {
  ctest_tree
  with_stubs env VITSLIM_BUILD_DIR="$WORK/ctest" bash scripts/test.sh -N | tee "$WORK/ctest.txt"
  grep -q "Total Tests: [1-9]" "$WORK/ctest.txt"
  local first
  # (sed stops at the first match itself: `sed | head -n 1` dies of SIGPIPE under pipefail when the
  # list outgrows one pipe write)
  first="$(sed -n 's/^ *Test *#[0-9]*: \([A-Za-z0-9_]*\.[A-Za-z0-9_]*\)$/\1/p; T; q' "$WORK/ctest.txt")"
  [[ -n "$first" ]]
  with_stubs env VITSLIM_BUILD_DIR="$WORK/ctest" bash scripts/test.sh -R "^$first\$" -FA '.*' --no-tests=error
}

# ---- the table: documented command -> short command ----------------------------------------------
README_CMD=()
SHORT_CMD=()
entry() { README_CMD+=("$(norm "$1")"); SHORT_CMD+=("$2"); }
# One compute thread per process (ranks share the cores anyway): threads that outnumber the free
# cores slow these small jobs down many times over when anything else runs beside the test.
T1="--threads 1"
FM="--epochs 2 --decay-epochs 1 --warmup-epochs 0 --steps-per-epoch 2 --entropy-images 16"  # + --eval-images
C100="--img-size 32 --calib-images 16 --batch-size 8"  # CIFAR's own size: pos_embed interpolated
DEITB="--epochs 1 --decay-epochs 1 --warmup-epochs 0 --steps-per-epoch 1 --eval-images 4 --entropy-images 0"

# README, Two commands
entry 'bash scripts/run.sh' \
  ': >"$WORK/cmake.log"
   with_stubs bash scripts/run.sh --pretrain-epochs 1 --finetune-epochs 1 --steps-per-epoch 2 --batch-size 16 \
     --calib-images 64 --eval-images 200 --bench-iters 1 --ratios 0.5 --tome-tune-images 64 \
     --tome-sweep-r 2 --threads 1 --quiet
   grep -q -- "--build" "$WORK/cmake.log"
   test -s runs/pipeline/report.md && test -s runs/pipeline/report.json && test -s runs/pipeline/plots/training.png'
entry 'bash scripts/test.sh' 'test_sh_short'
entry 'bash scripts/pretrain_fmnist.sh' \
  'with_stubs bash scripts/pretrain_fmnist.sh --smoke --out runs/pt
   "$PY" -c "import json; from safetensors import safe_open; f = safe_open(\"runs/pt/final.safetensors\", \"np\"); p = json.loads(f.metadata()[\"vitslim.provenance\"]); assert p[\"job\"] == \"train\" and p[\"seed\"] == 0, p"'
entry 'bash scripts/reproduce_budget.sh' \
  'with_stubs bash scripts/reproduce_budget.sh --smoke --stage fmnist-e2 >budget.txt
   test -s results/budget-smoke/fmnist-e2.json && grep -q "NOSE 50% vs unpruned" results/budget-smoke/summary.md &&
   test -s results/budget-smoke/budget.png &&
   with_stubs bash scripts/reproduce_budget.sh --smoke --stage fmnist-e2 | grep -q "fmnist-e2 finished earlier"'
# docs/results.md (Fine-tuning budget): the 12-block model's pretraining and the study's stage list
entry 'bash scripts/pretrain_fmnist.sh --model vit_fmnist12 --install' \
  'cp pretrained/vit_fmnist12.safetensors "$WORK/shipped12.safetensors"
   ok=1
   if with_stubs bash scripts/pretrain_fmnist.sh --model vit_fmnist12 --smoke --out runs/pt12 --install >/dev/null &&
     cmp -s runs/pt12/final.safetensors pretrained/vit_fmnist12.safetensors &&
     "$PY" -c "import json; from safetensors import safe_open; f = safe_open(\"pretrained/vit_fmnist12.safetensors\", \"np\"); p = json.loads(f.metadata()[\"vitslim.provenance\"]); assert \"vit_fmnist12\" in p[\"settings\"], p"
   then ok=0; fi
   cp "$WORK/shipped12.safetensors" pretrained/vit_fmnist12.safetensors; exit $ok'
entry 'bash scripts/pretrain_fmnist.sh --model vit_fmnist12 --check-convergence' \
  'with_stubs bash scripts/pretrain_fmnist.sh --model vit_fmnist12 --smoke --out runs/pt12c --check-convergence >out.txt
   grep -q "^convergence: top-1 .* after 2 more epochs at the final learning rate (gain [-+]" out.txt &&
   test -s runs/pt12c/converged/final.safetensors'
entry 'bash scripts/reproduce_budget.sh --list' \
  'bash scripts/reproduce_budget.sh --list | grep -qE "^fmnist12-e18 (to run|finished)"'
# pretrained/README.md (--install into this copy of the repository, then the shipped file put back)
entry 'bash scripts/pretrain_fmnist.sh --install' \
  'cp pretrained/vit_fmnist.safetensors "$WORK/shipped.safetensors"
   with_stubs bash scripts/pretrain_fmnist.sh --smoke --out runs/pt2 --install
   cmp -s runs/pt2/final.safetensors pretrained/vit_fmnist.safetensors && test -s pretrained/vit_fmnist.train.json
   cp "$WORK/shipped.safetensors" pretrained/vit_fmnist.safetensors'
entry ".venv/bin/python -c \"import json; from safetensors import safe_open; print(json.dumps(json.loads(safe_open('pretrained/vit_fmnist.safetensors', 'np').metadata()['vitslim.provenance']), indent=1))\"" \
  '.venv/bin/python -c "import json; from safetensors import safe_open; print(json.dumps(json.loads(safe_open(\"pretrained/vit_fmnist.safetensors\", \"np\").metadata()[\"vitslim.provenance\"]), indent=1))" >prov.txt && grep -q tensors prov.txt'
entry 'bash scripts/reproduce_fmnist.sh' \
  'with_stubs bash scripts/reproduce_fmnist.sh --finetune-epochs 1 --steps-per-epoch 2 --batch-size 16 \
     --calib-images 64 --eval-images 100 --bench-iters 1 --ratios 0.5 --criteria random --tome-tune-images 64 \
     --tome-sweep-r 2 --threads 1 --quiet >repro.txt
   grep -q "^reproduce_fmnist: .* s on" repro.txt
   "$PY" -c "import json; r = json.load(open(\"runs/reproduce-fmnist/report.json\")); assert r[\"seeds\"] == 3 and all(len(x[\"top1_seeds\"]) == 3 for x in r[\"runs\"]), r[\"runs\"]"
   test -s runs/reproduce-fmnist/plots/ratios.png'

# README, Entropy
entry 'build/vitslim entropy --model deit_tiny --weights deit_tiny_patch16_224-a1311bcf.pth
         --data-set cifar100 --data-path cifar-100-binary --calib-images 5000
         --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225 --out deit_tiny_c100.h5 --json deit_tiny_c100.json' \
  'build/vitslim entropy --model deit_tiny --weights deit_tiny_patch16_224-a1311bcf.pth \
     --data-set cifar100 --data-path cifar-100-binary $C100 \
     --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225 --out deit_tiny_c100.h5 --json deit_tiny_c100.json $T1
   .venv/bin/python scripts/check_trace.py deit_tiny_c100.h5'
entry 'mpirun -np 2 build/vitslim entropy --calib-images 4096 --out fm.h5' \
  '"$MPIEXEC" -np 2 build/vitslim entropy --calib-images 64 --out fm.h5'

# README, Search
entry 'build/vitslim search --model deit_tiny --weights deit_tiny.pth --data-set cifar100 --data-path c100
         --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225 --calib-images 2048 --ratios 0.25,0.3
         --out search.h5 --json search.json' \
  'build/vitslim search --model deit_tiny --weights deit_tiny.pth --data-set cifar100 --data-path c100 \
     --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225 $C100 --ratios 0.25,0.3,0.4 \
     --out search.h5 --json search.json $T1'
entry 'build/vitslim search --weights pretrained/vit_fmnist.safetensors --criterion cosine --ratios 0.5
         --out cosine.h5 --json cosine.json' \
  'build/vitslim search --weights pretrained/vit_fmnist.safetensors --criterion cosine --ratios 0.5 \
     --calib-images 64 --out cosine.h5 --json cosine.json $T1
   "$PY" -c "import json; j = json.load(open(\"cosine.json\")); assert j[\"criterion\"] == \"cosine\" and len(j[\"selections\"][0][\"layers\"]) == 3, j"'
entry 'mpirun -np 4 build/vitslim search ...' \
  '"$MPIEXEC" -np 2 build/vitslim search --model deit_tiny --weights deit_tiny.pth --data-set cifar100 --data-path c100 \
     --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225 $C100 --ratios 0.25,0.3,0.4 \
     --out search-2.h5 --json search-2.json
   same_selections search.json search-2.json'

# README, Train
entry 'build/vitslim train --remove-layers 1,3 --epochs 30 --decay-epochs 20 --out-dir runs/train' \
  'build/vitslim train --remove-layers 1,3 $FM --eval-images 100 --out-dir runs/train $T1'
entry 'build/vitslim train --model deit_tiny --weights deit_tiny.pth --data-set cifar100 --data-path c100
         --num-classes 100 --reset-head --remove-layers search.json@0.25 --epochs 100 --decay-epochs 75
         --batch-size 64 --out-dir runs/c100' \
  'build/vitslim train --model deit_tiny --weights deit_tiny.pth --data-set cifar100 --data-path c100 \
     --num-classes 100 --reset-head --remove-layers search.json@0.25 --img-size 32 $FM --eval-images 16 \
     --batch-size 8 --out-dir runs/c100 $T1'
entry 'mpirun -np 4 build/vitslim train ...' \
  '"$MPIEXEC" -np 2 build/vitslim train --remove-layers 1,3 $FM --eval-images 100 --out-dir runs/train-2'
entry 'mpirun -np 8 build/vitslim train --device cuda --bf16 ...' \
  'cuda_or_refused "$MPIEXEC" -np 2 build/vitslim train --device cuda --bf16 --remove-layers 1,3 $FM --eval-images 100 --out-dir runs/cuda'
entry 'build/vitslim train --weights pretrained/vit_fmnist.safetensors --remove-layers 1,3,5 --epochs 2 --decay-epochs 0.5
         --teacher start --distill soft --out-dir runs/kd' \
  'build/vitslim train --weights pretrained/vit_fmnist.safetensors --remove-layers 1,3,5 --epochs 2 --decay-epochs 0.5 \
     --teacher start --distill soft --warmup-epochs 0 --steps-per-epoch 2 --entropy-images 16 --eval-images 100 \
     --out-dir runs/kd $T1
   test -s runs/kd/final.safetensors'
entry 'build/vitslim train ... --resume' \
  'stop_and_resume build/vitslim train --remove-layers 1,3 --epochs 2 --decay-epochs 1 --warmup-epochs 0 \
     --steps-per-epoch 5 --checkpoint-steps 1 --entropy-images 16 --eval-images 100 --out-dir runs/resume $T1'

# README, Weights: a transformers folder (make_hf_golden.py's ViTForImageClassification, 5 named classes)
entry 'build/vitslim predict --weights path/to/vit-base-patch16-224 --images photos/ --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5 --out predictions.csv' \
  'mkdir -p photos && cp "$DATA/images/baseline.jpg" "$DATA/images/progressive.jpg" photos/ &&
     build/vitslim predict --weights "$DATA/hf/vit_classifier" --images photos/ --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5 \
     --out hf-predictions.csv $T1 && grep -q "class " hf-predictions.csv'

# README, Data
entry 'build/vitslim eval --model deit_tiny --weights deit_tiny.safetensors --data-set imagenet --data-path /data/imagenet' \
  'build/vitslim eval --model deit_tiny --weights deit_tiny.safetensors --data-set imagenet --data-path imagenet \
     --eval-images 16 $T1'
entry 'mpirun -np 8 build/vitslim train --device cuda --bf16 --model deit_base --weights deit_base.pth
         --data-set imagenet --data-path /data/imagenet --batch-size 256 --repeated-aug 3 --drop-path 0.1
         --workers 10 --remove-layers search.json@0.4 --epochs 400 --decay-epochs 299 --out-dir runs/b40' \
  'cuda_or_refused "$MPIEXEC" -np 2 build/vitslim train --device cuda --bf16 --model deit_base --weights deit_base.pth \
     --data-set imagenet --data-path imagenet --batch-size 2 --repeated-aug 3 --drop-path 0.1 \
     --workers 1 --remove-layers search.json@0.4 --img-size 64 $DEITB --out-dir runs/b40-cuda
   "$MPIEXEC" -np 2 build/vitslim train --model deit_base --weights deit_base.pth \
     --data-set imagenet --data-path imagenet --batch-size 2 --repeated-aug 3 --drop-path 0.1 \
     --workers 1 --remove-layers search.json@0.4 --img-size 64 $DEITB --out-dir runs/b40'
entry 'build/vitslim bench-data --data-path /data/imagenet/train --images 512 --workers 4' \
  'build/vitslim bench-data --data-path imagenet/train --images 16 --workers 2 $T1'

# README, Merge (the checkpoint is the newest of the short runs/train above)
entry 'build/vitslim merge --checkpoint runs/train/checkpoints/step-000012345.safetensors --out compact.safetensors' \
  'build/vitslim merge --checkpoint "$(newest_checkpoint runs/train)" --out compact.safetensors $T1'
entry 'build/vitslim merge --checkpoint ... --out folded.safetensors --fold-residual --json merge.json' \
  'build/vitslim merge --checkpoint "$(newest_checkpoint runs/train)" --out folded.safetensors --fold-residual \
     --json merge.json $T1'

# README, Launch (run.ini: mode = local, 2 ranks of an eval job)
entry 'build/vitslim-launch --dry-run run.ini' 'build/vitslim-launch --dry-run run.ini >dry.txt; grep -q -- "-np 2 " dry.txt'
entry 'build/vitslim-launch run.ini' 'build/vitslim-launch run.ini && test -s runs/launch/eval.json'

# README, Evaluate and benchmark (a CIFAR-100 compact model: the short runs/c100's export at lambda 0)
entry 'build/vitslim eval --weights compact.safetensors --data-set cifar100 --data-path c100 --json eval.json' \
  'build/vitslim eval --weights runs/c100/final.safetensors --data-set cifar100 --data-path c100 --json eval.json $T1'
entry 'build/vitslim bench --model deit_base --remove-layers 0,1,3,4,6 --batch-size 32 --json bench.json' \
  'build/vitslim bench --model deit_base --remove-layers 0,1,3,4,6 --img-size 64 --batch-size 2 --iters 1 \
     --warmup 0 --json bench.json $T1'

# README, Plan: the shipped vit_fmnist, few candidates, short probes; the fake timer stands in for
# ONNX Runtime when the environment has none
entry 'build/vitslim plan --weights pretrained/vit_fmnist.safetensors --target-speedup 1.2 --runtime libtorch,onnxruntime --tome-r 0,2 --out-dir runs/plan' \
  'build/vitslim plan --weights pretrained/vit_fmnist.safetensors --max-drop 100 --runtime libtorch,onnxruntime \
     --tome-r 0,2 --max-ratio 0.34 --calib-images 64 --probe-steps 2 --probe-images 64 --rounds 1 --out-dir runs/plan $T1'
entry 'build/vitslim train --config runs/plan/plan-train.ini --epochs 2' \
  'build/vitslim train --config runs/plan/plan-train.ini --epochs 2 --steps-per-epoch 2 --decay-epochs 1 \
     --warmup-epochs 0 --eval-images 64 --entropy-images 0 --out-dir runs/plan-train $T1'
entry '.venv/bin/python scripts/plot_plan.py runs/plan' \
  '.venv/bin/python scripts/plot_plan.py runs/plan && test -s runs/plan/plots/plan.png'

# README, Token merging (ToMe): the shipped vit_fmnist stands in for the compact model
entry 'build/vitslim eval --weights pretrained/vit_fmnist.safetensors --data-set fashion-mnist --tome-r 4' \
  'build/vitslim eval --weights pretrained/vit_fmnist.safetensors --data-set fashion-mnist --tome-r 4 \
     --eval-images 128 $T1'
entry 'build/vitslim bench --model deit_base --remove-layers 0,1,3,4,6 --tome-r 17 --batch-size 32' \
  'build/vitslim bench --model deit_base --remove-layers 0,1,3,4,6 --tome-r 1 --img-size 64 --batch-size 2 \
     --iters 1 --warmup 0 --train=false $T1 >tome_bench.txt; grep -q "^| pruned + ToMe |" tome_bench.txt'
entry 'build/vitslim tome-sweep --weights compact.safetensors --data-set fashion-mnist --data-split train --eval-images 10000 --sweep-r 1,2,3,4,6 --sweep-start 0,1 --max-drop 0.3 --json sweep.json --csv pruned.csv' \
  'build/vitslim tome-sweep --weights pretrained/vit_fmnist.safetensors --data-set fashion-mnist --data-split train \
     --eval-images 64 --sweep-r 1,2 --sweep-start 0,1 --max-drop 0.3 --bench-batch 8 --bench-iters 1 \
     --json sweep.json --csv pruned.csv $T1 && test -s sweep.json'
entry '.venv/bin/python scripts/plot_tome.py --sweep "NOSE 50%=pruned.csv" --out tome.png' \
  '.venv/bin/python scripts/plot_tome.py --sweep "NOSE 50%=pruned.csv" --out tome.png && test -s tome.png'

# README, Deploy (export to ONNX, predict); the diluting checkpoint comes from a short run whose
# blocks 1 and 3 are still diluting at its first checkpoint
entry 'build/vitslim export --weights pretrained/vit_fmnist.safetensors --remove-layers 1,3 --out compact.onnx --sample compact.sample.safetensors' \
  'build/vitslim export --weights pretrained/vit_fmnist.safetensors --remove-layers 1,3 --out compact.onnx \
     --sample compact.sample.safetensors $T1'
entry '.venv/bin/python scripts/check_onnx.py compact.onnx compact.sample.safetensors --removed 1,3' \
  '.venv/bin/python scripts/check_onnx.py compact.onnx compact.sample.safetensors --removed 1,3'
entry 'build/vitslim export --checkpoint runs/train/checkpoints/step-000000012.safetensors --lambda 0.5 --out diluting.onnx --sample diluting.sample.safetensors' \
  'build/vitslim train --remove-layers 1,3 --epochs 2 --decay-epochs 2 --warmup-epochs 0 --steps-per-epoch 2 \
     --entropy-images 16 --eval-images 16 --out-dir runs/dilute $T1 >/dev/null
   build/vitslim export --checkpoint "$(ls runs/dilute/checkpoints/step-*.safetensors | head -n 1)" --lambda 0.5 \
     --out diluting.onnx --sample diluting.sample.safetensors $T1
   .venv/bin/python scripts/check_onnx.py diluting.onnx diluting.sample.safetensors'
entry 'build/vitslim predict --weights pretrained/vit_fmnist.safetensors --data-split test --out predictions.csv --save-logits logits.safetensors' \
  'build/vitslim predict --weights pretrained/vit_fmnist.safetensors --data-split test --out predictions.csv \
     --save-logits logits.safetensors --limit 64 $T1 && test "$(wc -l <predictions.csv)" -eq 65'
entry 'mpirun -np 2 build/vitslim predict --model deit_tiny --images /usr/share/backgrounds --topk 3 --out photos.csv' \
  '"$MPIEXEC" -np 2 build/vitslim predict --model deit_tiny --images /usr/share/backgrounds --topk 3 --out photos.csv \
     --limit 4 --threads 1 && test "$(wc -l <photos.csv)" -eq 5'
entry '.venv/bin/python scripts/bench_deploy.py --json deploy.json' \
  '.venv/bin/python scripts/bench_deploy.py --json deploy.json --models deit_tiny --batches 1 --warmup 0 --iters 1 \
     --threads 1 && test -s deploy.json'

# README, Benchmark
entry '.venv/bin/python scripts/bench_forward.py' \
  '.venv/bin/python scripts/bench_forward.py --batch-size 2 --rounds 1 --warmup 0 --iters 1 --threads 1'
entry '.venv/bin/python scripts/bench_search.py' \
  '.venv/bin/python scripts/bench_search.py --model vit_fmnist --calib-images 32 --batch-size 16'
entry '.venv/bin/python scripts/bench_deploy.py' \
  '.venv/bin/python scripts/bench_deploy.py --models deit_tiny --batches 1 --warmup 0 --iters 1 --threads 1'
entry 'bash scripts/bench_data.sh' \
  'bash scripts/bench_data.sh --images 64 --train-steps 2'
entry 'bash scripts/bench_index.sh' \
  'bash scripts/bench_index.sh --images 3000 --classes 30 --ranks 2 --photos 32 >bench_index.txt
   grep -q "x faster" bench_index.txt && grep -q "2 ranks, index file" bench_index.txt && grep -q "loader, 2 thread" bench_index.txt
   note "a 3,000-file tree, 2 ranks, 32 photos (the documented run: 1.28M files, 8 ranks, 512 photos)"'
entry '.venv/bin/python scripts/bench_train.py --threads 2 --steps 10 --rounds 3' \
  '.venv/bin/python scripts/bench_train.py --threads 1 --steps 1 --rounds 1 --batch-size 2 --ranks-batch 2 --no-compile
   note "torch.compile peer skipped (--no-compile: it compiles for minutes)"'
entry 'mpiexec -np 2 build/vitslim_bench_allreduce [--model deit_base]' \
  '"$MPIEXEC" -np 2 build/vitslim_bench_allreduce --iters 1
   note "deit_tiny only (--model deit_base: 330 MiB x iterations)"'

# docs/cluster.md
entry 'VITSLIM_TORCH_PREFIX=/path/to/libtorch bash scripts/setup.sh' \
  'ln -s "$(.venv/bin/python -c "import os, torch; print(os.path.dirname(torch.__file__))")" "$WORK/libtorch"
   : >"$WORK/cmake.log"
   VITSLIM_TORCH_PREFIX="$WORK/libtorch" STUB_CMAKE_CONFIGURE=real with_stubs bash scripts/setup.sh | tee setup.txt
   grep -qF -- "-DCMAKE_PREFIX_PATH=$WORK/libtorch " "$WORK/cmake.log"
   grep -q "^-- vitslim dependency Torch: " setup.txt
   note "/path/to/libtorch: the wheel'"'"'s LibTorch, configured for real, the build step recorded"'
entry 'build/vitslim --version' 'build/vitslim --version'
entry 'mpirun -np 2 build/vitslim_nccl_check' \
  'if [[ -x build/vitslim_nccl_check ]]; then "$MPIEXEC" -np 2 build/vitslim_nccl_check;
   else build/vitslim --version >version.txt; grep -q "NCCL: not built" version.txt; note "not built: this build has no NCCL"; fi'
entry 'build/vitslim-launch --dry-run runs/c100.ini' \
  'build/vitslim-launch --dry-run runs/c100.ini >c100-dry.txt; [[ $(grep -c "^# submit: sbatch --parsable" c100-dry.txt) -eq 3 ]]'
entry 'build/vitslim-launch runs/c100.ini' 'submit_recorded build/vitslim-launch runs/c100.ini'
# docs/cluster.md, ImageNet as shards (the stand-in imagenet/: 1000 classes, one image each per split;
# shards of 250 so that two ranks get two each)
entry "build/vitslim make-shards --data-set imagenet --data-path /data/imagenet --out '/data/imagenet-wds/train-%06d.tar' --shard-size 1000" \
  'build/vitslim make-shards --data-set imagenet --data-path imagenet --out "imagenet-wds/train-%06d.tar" --shard-size 250 $T1
   test -s imagenet-wds/train-000003.tar'
entry "build/vitslim make-shards --data-set imagenet --data-path /data/imagenet --data-split test --out '/data/imagenet-wds/val-%06d.tar' --shard-size 1000" \
  'build/vitslim make-shards --data-set imagenet --data-path imagenet --data-split test --out "imagenet-wds/val-%06d.tar" --shard-size 250 $T1'
entry 'build/vitslim index --data-set wds --data-path /data/imagenet-wds --index /data/imagenet-wds/train.index' \
  'build/vitslim index --data-set wds --data-path imagenet-wds --index imagenet-wds/train.index $T1 | grep -q "index: 1000 images in 4 shards"'
entry 'mpirun -np 8 build/vitslim search --model deit_base --weights deit_base.pth --data-set wds --data-path /data/imagenet-wds --calib-images 2048 --ratios 0.4,0.5 --out search.h5 --json search.json' \
  '"$MPIEXEC" -np 2 build/vitslim search --model deit_base --weights deit_base.pth --data-set wds --data-path imagenet-wds \
     --calib-images 8 --batch-size 4 --img-size 64 --ratios 0.4,0.5 --out search-wds.h5 --json search-wds.json'
entry 'mpirun -np 8 build/vitslim train --device cuda --bf16 --model deit_base --weights deit_base.pth --data-set wds --data-path /data/imagenet-wds --index /data/imagenet-wds/train.index --batch-size 256 --repeated-aug 3 --drop-path 0.1 --workers 10 --shuffle-buffer 5000 --remove-layers search.json@0.4 --epochs 400 --decay-epochs 299 --out-dir runs/b40-wds' \
  'cuda_or_refused "$MPIEXEC" -np 2 build/vitslim train --device cuda --bf16 --model deit_base --weights deit_base.pth \
     --data-set wds --data-path imagenet-wds --index imagenet-wds/train.index --batch-size 2 --repeated-aug 3 \
     --drop-path 0.1 --workers 1 --shuffle-buffer 5000 --remove-layers search-wds.json@0.4 --img-size 64 $DEITB \
     --out-dir runs/b40-wds-cuda
   "$MPIEXEC" -np 2 build/vitslim train --model deit_base --weights deit_base.pth \
     --data-set wds --data-path imagenet-wds --index imagenet-wds/train.index --batch-size 2 --repeated-aug 3 \
     --drop-path 0.1 --workers 1 --shuffle-buffer 5000 --remove-layers search-wds.json@0.4 --img-size 64 $DEITB \
     --out-dir runs/b40-wds'
entry 'mpirun -np 8 build/vitslim eval --weights runs/b40-wds/final.safetensors --data-set wds --data-path /data/imagenet-wds --json runs/b40-wds/eval.json' \
  '"$MPIEXEC" -np 2 build/vitslim eval --weights runs/b40-wds/final.safetensors --data-set wds --data-path imagenet-wds \
     --eval-images 8 --json runs/b40-wds/eval.json
   test -s runs/b40-wds/eval.json'

# docs/deploy.md: the compact model of the entries above as a transformers folder, checked in transformers
entry 'build/vitslim export --weights compact.safetensors --format hf --out compact-hf --sample compact-hf.sample.safetensors' \
  'build/vitslim export --weights compact.safetensors --format hf --out compact-hf --sample compact-hf.sample.safetensors \
     --force $T1'
entry '.venv/bin/python scripts/check_hf_export.py compact-hf compact-hf.sample.safetensors' \
  '.venv/bin/python scripts/check_hf_export.py compact-hf compact-hf.sample.safetensors'

# docs/training.md
entry 'mpirun -np 8 build/vitslim train --device cuda --bf16 --model deit_base --weights deit_base.pth ...' \
  'cuda_or_refused "$MPIEXEC" -np 2 build/vitslim train --device cuda --bf16 --model deit_base --weights deit_base.pth \
     --img-size 64 --batch-size 2 $DEITB --out-dir runs/gpu'
entry 'build/vitslim train --model vit_fmnist --weights pretrained/vit_fmnist.safetensors --data-set fashion-mnist --epochs 1 --warmup-epochs 0 --steps-per-epoch 100 --batch-size 64 --mixup 0 --cutmix 0 --profile --out-dir runs/profile' \
  'build/vitslim train --model vit_fmnist --weights pretrained/vit_fmnist.safetensors --data-set fashion-mnist --epochs 1 \
     --warmup-epochs 0 --steps-per-epoch 4 --batch-size 16 --eval-images 32 --mixup 0 --cutmix 0 --profile --quiet \
     --out-dir runs/profile $T1 >profile.txt
   grep -q "^| backward | " profile.txt && grep -q "^step / (forward + backward): " profile.txt &&
   .venv/bin/python -c "import json; p = json.load(open(\"runs/profile/train.json\"))[\"phases\"]; assert p[\"steps\"] == 3 and p[\"forward\"] > 0, p"'
entry 'build/vitslim eval --device cuda --tf32=false --weights runs/train/final.safetensors' \
  'cuda_or_refused build/vitslim eval --device cuda --tf32=false --weights runs/train/final.safetensors --eval-images 64 $T1'
entry 'bash scripts/gpu_bundle.sh' 'bash scripts/gpu_bundle.sh --list >"$WORK/bundle.txt" && grep -q "^total " "$WORK/bundle.txt"'
entry 'bash scripts/gpu_smoke.sh' 'smoke_preflight'
entry 'srun --mpi=pmix --ntasks-per-node=8 --gpus-per-node=8 build/vitslim train --device cuda ...' \
  'cuda_or_refused "$MPIEXEC" -np 2 build/vitslim train --device cuda --remove-layers 1,3 $FM --eval-images 100 --out-dir runs/srun
   note "srun (no Slurm here) replaced by mpiexec -np 2"'

# docs/testing.md (each selection listed, not run: `bash scripts/test.sh` above runs one test through it)
entry 'bash scripts/test.sh -L unit' \
  'test_sh_list -L unit >unit.txt
   grep -q "^TomeSweep\.ChoosesTheFastestPointWithinTheBudget$" unit.txt && ! grep -q "^e2e_\|^mpi_\|^slurm_" unit.txt'
entry 'bash scripts/test.sh -L e2e' \
  'test_sh_list -L e2e >e2e.txt
   grep -q "^e2e_readme_commands$" e2e.txt && ! grep -q "^mpi_\|^slurm_\|^TomeSweep\." e2e.txt'
entry "bash scripts/test.sh -R '^e2e_train\$'" \
  'test_sh_list -R "^e2e_train\$" >one.txt
   [[ "$(grep -v "^make_" one.txt)" == e2e_train ]]  # (with the fixture tests it needs)'
entry "build/vitslim_unit --gtest_filter='TomeSweep.*'" \
  'build/vitslim_unit --gtest_filter="TomeSweep.*" >gtest.txt; grep -q "PASSED.* 4 tests" gtest.txt'

# ---- the stand-in repository root ----------------------------------------------------------------
mkdir -p "$REPO/build" "$REPO/runs" "$STUBS" "$WORK/slurm" "$WORK/no-wheels" "$WORK/logs"
if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
  git -C "$ROOT" ls-files -co --exclude-standard | while read -r f; do [[ -f "$ROOT/$f" ]] && echo "$f"; done \
    | tar -C "$ROOT" -cf - -T - | tar -C "$REPO" -xf -
else
  tar -C "$ROOT" --exclude=./build --exclude='./build-*' --exclude=./.venv --exclude=./.venv-peer \
    --exclude=./runs -cf - . | tar -C "$REPO" -xf -
fi
rm -rf "$REPO/scripts" && cp -r "$VITSLIM_SCRIPTS" "$REPO/scripts"
ln -s "$(cd "$(dirname "$PY")/.." && pwd)" "$REPO/.venv"
for b in vitslim vitslim-launch vitslim_bench_allreduce vitslim_nccl_check vitslim_unit; do
  [[ -x "$BUILD/$b" ]] && ln -s "$BUILD/$b" "$REPO/build/$b"
done
for name in deit_tiny_patch16_224-a1311bcf.pth deit_tiny.pth; do ln -s "$DATA/deit_tiny.pth" "$REPO/$name"; done
ln -s "$DATA/deit_tiny.safetensors" "$REPO/deit_tiny.safetensors"
for name in deit_base.pth deit_base_patch16_224.pth; do ln -s "$DATA/deit_base.pth" "$REPO/$name"; done

# Recorders: cmake (configure optionally for real, never --build), apt-get, sudo, sbatch.
cat >"$STUBS/cmake" <<EOF
#!/usr/bin/env bash
printf '%s\n' "\$*" >>"$WORK/cmake.log"
if [[ "\${STUB_CMAKE_CONFIGURE:-}" == real && "\$1" != --build ]]; then exec $(command -v cmake) "\$@"; fi
EOF
printf '#!/usr/bin/env bash\nprintf "%%s\\n" "$*" >>"%s/apt.log"\n' "$WORK" >"$STUBS/apt-get"
printf '#!/usr/bin/env bash\nexec "$@"\n' >"$STUBS/sudo"
cat >"$WORK/slurm/sbatch" <<EOF
#!/usr/bin/env bash
printf '%s\n' "\$*" >>"$WORK/sbatch.log"
echo \$((1000 + \$(grep -c . "$WORK/sbatch.log")))
EOF
chmod +x "$STUBS"/* "$WORK/slurm/sbatch"

cd "$REPO"
# The commands that start from the shipped checkpoint need one: a short one where it is not there.
[[ -f pretrained/vit_fmnist.safetensors ]] ||
  with_stubs bash scripts/pretrain_fmnist.sh --smoke --out runs/pt0 --install >/dev/null
"$PY" - <<'PYEOF'
import os, random
# CIFAR-100 binary (train.bin, test.bin): records of coarse label, fine label, 3072 bytes (RGB planes).
rng = random.Random(0)
os.makedirs("cifar-100-binary")
for name, count in (("train.bin", 64), ("test.bin", 32)):
    with open(os.path.join("cifar-100-binary", name), "wb") as f:
        for _ in range(count):
            f.write(bytes([rng.randrange(20), rng.randrange(100)]) + rng.randbytes(3072))
os.symlink("cifar-100-binary", "c100")
PYEOF
# ImageNet-1k layout: train/ and val/ with 1000 wnid folders, one real photo each (links to 32 cuts).
"$PY" scripts/make_image_folder.py "$WORK/photos" --train 24 --val 8 --classes 8 >/dev/null
"$PY" - "$WORK/photos" <<'PYEOF'
import glob, os, sys
photos = sorted(glob.glob(os.path.join(sys.argv[1], "*", "*", "*.JPEG")))
assert photos, "no photos"
for split in ("train", "val"):
    for c in range(1000):
        wnid = f"n{c:08d}"
        os.makedirs(os.path.join("imagenet", split, wnid))
        os.symlink(photos[(c + (split == "val")) % len(photos)], os.path.join("imagenet", split, wnid, f"{wnid}_1.JPEG"))
PYEOF
cat >run.ini <<INI
[launch]
job = eval
mode = local
tasks_per_node = 2
output_dir = runs/launch
binary = build/vitslim
mpiexec = $MPIEXEC

[eval]
eval-images = 200
quiet =
INI
# runs/c100.ini as docs/cluster.md writes it (the ```ini block after the line naming it).
awk '/`runs\/c100\.ini`/ {named = 1} named && /^```ini/ {copy = 1; next} copy && /^```/ {exit} copy' \
  "$ROOT/docs/cluster.md" >runs/c100.ini
# The peer environment of bench_data.sh: the real one if this checkout has it; otherwise a stand-in,
# the project environment with timm_compat's inert torchvision (bench_data.py runs through, but its
# peer numbers mean nothing).
if [[ -x "$ROOT/.venv-peer/bin/python" ]] && "$ROOT/.venv-peer/bin/python" -c "import torchvision, timm.data" 2>/dev/null; then
  ln -s "$ROOT/.venv-peer" .venv-peer
  PEER_NOTE=""
else
  mkdir -p "$WORK/peer/bin"
  cat >"$WORK/peer/bin/python" <<EOF
#!/usr/bin/env bash
exec "$PY" -c 'import runpy, sys; sys.path.insert(0, sys.argv[1]); import timm_compat; sys.argv = sys.argv[2:]; runpy.run_path(sys.argv[0], run_name="__main__")' "$REPO/scripts" "\$@"
EOF
  printf '#!/usr/bin/env bash\necho "%s/peer/bin/python"\n' "$WORK" >scripts/peer_env.sh
  chmod +x "$WORK/peer/bin/python"
  PEER_NOTE="no peer environment (.venv-peer): bench_data.py's peer is a stand-in without torchvision"
fi

# ---- run -----------------------------------------------------------------------------------------
DOC_CMD=()
declare -A DOC_FILES=() TABLE_INDEX=()
while IFS=$'\t' read -r file command; do
  [[ -n "${DOC_FILES[$command]+x}" ]] || DOC_CMD+=("$command")
  DOC_FILES[$command]+="${DOC_FILES[$command]:+, }$file"
done < <(documented_commands)
for i in "${!README_CMD[@]}"; do TABLE_INDEX[${README_CMD[$i]}]=$i; done
passed=0
failed=0
if ((${#DOC_CMD[@]} == 0)); then
  echo 'FAIL no commands found in the bash blocks of README.md and docs/*.md'
  failed=$((failed + 1))
fi
for command in "${DOC_CMD[@]}"; do
  [[ -n "${TABLE_INDEX[$command]+x}" ]] && continue
  echo "FAIL $command"
  echo "     (${DOC_FILES[$command]}) has no short mode: add an entry to tests/e2e/readme_commands.sh"
  failed=$((failed + 1))
done
for i in "${!README_CMD[@]}"; do
  command="${README_CMD[$i]}"
  if [[ -z "${DOC_FILES[$command]+x}" ]]; then
    echo "FAIL $command"
    echo "     stale table entry: no longer in README.md or docs/*.md; remove or update it"
    failed=$((failed + 1))
    continue
  fi
  log="$WORK/logs/$i.log"
  NOTES="$WORK/logs/$i.notes"
  : >"$NOTES"
  [[ "$command" == "bash scripts/bench_data.sh" && -n "$PEER_NOTE" ]] && echo "$PEER_NOTE" >>"$NOTES"
  start=$SECONDS
  (set -euo pipefail; eval "${SHORT_CMD[$i]}") >"$log" 2>&1 </dev/null
  rc=$?
  took="$((SECONDS - start)) s"
  [[ -s "$NOTES" ]] && took="$took; $(sed ':a;N;$!ba;s/\n/; /g' "$NOTES")"
  if ((rc == 0)); then
    echo "ok $command  [$took]"
    passed=$((passed + 1))
  else
    echo "FAIL $command  [exit $rc, $took]"
    echo "     short mode: $(norm "${SHORT_CMD[$i]//$'\\\n'/}")"
    tail -n 15 "$log" | sed 's/^/     | /'
    failed=$((failed + 1))
  fi
done
echo "$passed passed, $failed failed"
((failed == 0))
