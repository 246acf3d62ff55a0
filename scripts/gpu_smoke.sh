#!/usr/bin/env bash
# scripts/gpu_smoke.sh: the GPU kit. On a bare, offline GPU machine (one H100/H200, a CUDA torch
# in python3, nvcc, CMake; none of vitslim's development packages) it builds vitslim against the
# bundle of scripts/gpu_bundle.sh and that python3's torch (scripts/bundle_build.sh --cuda), then
# prints one PASS/FAIL line per check and the DeiT-B numbers; exit 0 only when every check passed.
# A preflight names what is missing first (no NVIDIA driver or GPU, no bundle, a CPU or
# wrong-architecture torch, no nvcc, no NCCL headers, a binary with unresolved libraries, no
# mpiexec); nothing is ever SKIPped with exit 0. Under 10 minutes there (build at most 4).
#   nccl_check     vitslim_nccl_check on one rank (all-reduce, max, broadcast, all-gather)
#   shared_gpu     2 ranks on 1 GPU are refused on every rank, with no hang
#   reducer        vitslim_gpu_test: NCCL communicator + reducer against plain backward
#   bench_fp32/bf16  bench --device cuda (TF32 on / bf16 autocast)
#   entropy        entropy on CUDA vs CPU (TF32 off): every entropy within 1e-4 relative
#   search         NOSE search on CUDA vs CPU (TF32 off): the same picks at 0.25 and 0.5
#   eval           eval on CUDA vs CPU (TF32 off): the same top-1/top-5 counts
#   predict        predict --save-logits on CUDA vs CPU (TF32 off): logits within 1e-3
#   tome           tome-sweep on CUDA vs CPU (TF32 off): every point's top-1 within 0.5 points
#   export_sample  export --sample on CUDA vs CPU (TF32 off): sample logits within 1e-3
#   train_cuda     3 steps + evaluation on CUDA fp32 (TF32 off) vs CPU: last loss within 2e-3
#   train_bf16     the same in bf16 autocast, within 3e-2
#   train_planes   --aug deit (uint8 batches normalised on the GPU) vs CPU, no erasing: within 2e-3
#   train_erase    the same with erasing at 0.5 (the noise is drawn on the GPU): within 1e-1
#   pipeline       the whole pipeline in a short mode with --device cuda: finished, report.json
# Numbers: DeiT-B bf16 batch 256 training images/s and MFU from `vitslim train` on synthetic data,
# full and with blocks 0,1,3,4,6 removed; the same step in timm eager and torch.compile
# (scripts/gpu_peer_train.py); NOSE search of DeiT-B at 50% over 1,024 images; pruned/full
# inference at batch 256 bf16 (the paper: 1.205x). Goals: vitslim >= 1.0x timm eager, MFU >= 40%.
# Environment: VITSLIM_BUILD (already built binaries: vitslim, vitslim_nccl_check,
# vitslim_gpu_test; default: build here with scripts/bundle_build.sh --cuda into build-bundle/),
# VITSLIM_PYTHON (default python3), MPIEXEC (default the bundle's), VITSLIM_DATA (a Fashion-MNIST
# folder; default Debian's, else 512 + 256 random images are written), VITSLIM_PEAK_TFLOPS (dense
# bf16 peak for MFU; default 989, H100/H200 SXM), VITSLIM_SMOKE_OUT (outputs; default
# build-bundle/smoke), VITSLIM_SMOKE_DEVICE (default cuda; cpu runs every command on the CPU,
# which checks the kit itself on a machine without a GPU), VITSLIM_SMOKE_NUMBERS (0: skip the
# DeiT-B numbers; tiny: the same commands at toy sizes).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${VITSLIM_PYTHON:-python3}"
PEAK_TFLOPS="${VITSLIM_PEAK_TFLOPS:-989}"
DEVICE="${VITSLIM_SMOKE_DEVICE:-cuda}"
OUT="${VITSLIM_SMOKE_OUT:-}"
COMPARE=("$PY" "$ROOT/scripts/gpu_compare.py")
PRUNED=0,1,3,4,6
failed=0
started=$SECONDS

result() {  # name, status (0 = pass), detail
  if [[ $2 -eq 0 ]]; then echo "PASS $1: $3"; else echo "FAIL $1: $3"; failed=$((failed + 1)); fi
}
stop() {
  echo "FAIL preflight: $*"
  echo "gpu_smoke: stopped before the checks"
  exit 1
}
last_line() { tail -n 1 "$1" 2>/dev/null | cut -c1-300; }

preflight() {
  if [[ $DEVICE == cuda ]]; then
    command -v nvidia-smi >/dev/null || stop "nvidia-smi not found: no NVIDIA driver on this machine"
    local gpus
    gpus=$(nvidia-smi -L 2>&1) || stop "nvidia-smi failed (driver not loaded?): $(head -n 1 <<<"$gpus")"
    grep -q "^GPU " <<<"$gpus" || stop "nvidia-smi lists no GPU"
    echo "gpu_smoke: $(head -n 1 <<<"$gpus")"
  fi
  if [[ -z "${VITSLIM_BUILD:-}" ]]; then
    local flags=(--python "$PY")
    [[ $DEVICE == cuda ]] && flags+=(--cuda)
    bash "$ROOT/scripts/bundle_build.sh" "${flags[@]}" || stop "the build against the bundle failed (above)"
    VITSLIM_BUILD="$ROOT/build-bundle/build"
    # shellcheck source=/dev/null
    source "$ROOT/build-bundle/prefix/env.sh"
  fi
  BIN="$VITSLIM_BUILD/vitslim"
  for b in "$BIN" "$VITSLIM_BUILD/vitslim_nccl_check" "$VITSLIM_BUILD/vitslim_gpu_test"; do
    [[ -x "$b" ]] || stop "$b not found (VITSLIM_BUILD=$VITSLIM_BUILD)"
    local missing
    missing=$(ldd "$b" 2>/dev/null | grep "not found" | head -n 3 | tr '\n' ' ')
    [[ -z "$missing" ]] || stop "$b: libraries not found: $missing"
  done
  MPIEXEC="${MPIEXEC:-$(command -v mpiexec || true)}"
  [[ -n "$MPIEXEC" && -x "$MPIEXEC" ]] || stop "no mpiexec (the bundle's openmpi-bin, or MPIEXEC=)"
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
}

# A Fashion-MNIST folder: Debian's, or 512 + 256 random 28x28 images in the IDX format.
data_dir() {
  local debian=/usr/share/datasets/fashion-mnist
  if [[ -n "${VITSLIM_DATA:-}" ]]; then echo "$VITSLIM_DATA"; return; fi
  if [[ -f "$debian/train-images-idx3-ubyte.gz" ]]; then echo "$debian"; return; fi
  "$PY" - "$OUT/data" <<'PY'
import os, random, struct, sys
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = random.Random(0)
for prefix, n in (("train", 512), ("t10k", 256)):
    with open(os.path.join(out, prefix + "-images-idx3-ubyte"), "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 28, 28) + bytes(rng.randrange(256) for _ in range(n * 784)))
    with open(os.path.join(out, prefix + "-labels-idx1-ubyte"), "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + bytes(rng.randrange(10) for _ in range(n)))
PY
  echo "$OUT/data"
}

# Runs `vitslim JOB ARGS` twice, TF32 off: "ref" on the CPU, "dev" on $DEVICE; logs in
# $OUT/NAME-ref.log and NAME-dev.log; the caller compares the outputs. Returns non-zero (and sets
# DETAIL) when either run fails.
twin() {  # name, job, args with @ standing for ref / dev in output names
  local name=$1 job=$2 run dev
  shift 2
  for run in ref dev; do
    dev=cpu
    [[ $run == dev ]] && dev=$DEVICE
    local args=("${@//@/$run}")
    if ! timeout 300 "$BIN" "$job" "${args[@]}" --device "$dev" --tf32=false >"$OUT/$name-$run.log" 2>&1; then
      DETAIL="$job --device $dev failed: $(last_line "$OUT/$name-$run.log")"
      return 1
    fi
  done
}

check_compare() {  # name, twin arguments..., --, compare arguments...
  local name=$1 i
  shift
  for ((i = 1; i <= $#; i++)); do [[ ${!i} == -- ]] && break; done
  local run=("${@:1:i-1}") compare=("${@:i+1}") line
  if ! twin "$name" "${run[@]}"; then
    result "$name" 1 "$DETAIL"
    return
  fi
  line=$("${COMPARE[@]}" "${compare[@]}")
  [[ $line == ok* ]]
  result "$name" $? "${line#* }"
}

check_nccl() {
  local log="$OUT/nccl_check.log"
  timeout 120 "$VITSLIM_BUILD/vitslim_nccl_check" >"$log" 2>&1
  local rc=$?
  grep -q "^PASS" "$log" && [[ $rc -eq 0 ]]
  result nccl_check $? "$(grep -m1 "NCCL allreduce" "$log" || last_line "$log")"
}

check_shared_gpu() {
  local log="$OUT/shared_gpu.log" rc=0 first="${CUDA_VISIBLE_DEVICES:-0}"
  CUDA_VISIBLE_DEVICES="${first%%,*}" timeout 180 "$MPIEXEC" -np 2 "$BIN" train --device cuda \
    "${TRAIN[@]}" --out-dir "$OUT/shared" >"$log" 2>&1 || rc=$?
  [[ $rc -ne 0 && $rc -ne 124 ]] && grep -q "share one GPU" "$log"
  result shared_gpu $? "exit $rc (124: hung); $(grep -m1 "share one GPU" "$log" || last_line "$log")"
}

check_reducer() {
  local log="$OUT/reducer.log"
  timeout 300 "$VITSLIM_BUILD/vitslim_gpu_test" >"$log" 2>&1
  local rc=$?
  [[ $rc -eq 0 ]] && ! grep -q "SKIPPED" "$log" && grep -q "PASSED" "$log"
  result reducer $? "$(grep -m1 -E "PASSED|FAILED|SKIPPED" "$log" || last_line "$log")"
}

check_bench() {  # name, extra flags
  local name=$1 log="$OUT/$1.log" rate="" batch=64 iters=5
  shift
  [[ $DEVICE == cpu ]] && batch=8 iters=2  # the dry run: the command, not the speed
  if timeout 300 "$BIN" bench --device "$DEVICE" --batch-size "$batch" --iters "$iters" --warmup 1 "$@" \
    --json "$OUT/$name.json" >"$log" 2>&1; then
    rate=$("$PY" -c 'import json,sys; print("%.1f" % json.load(open(sys.argv[1]))["models"][0]["train_step"]["images_per_s"])' \
      "$OUT/$name.json" 2>/dev/null)
  fi
  [[ -n "$rate" ]]
  result "$name" $? "${rate:+deit_tiny batch $batch training $rate img/s}$([[ -z $rate ]] && last_line "$log")"
}

# name, tolerance, the CPU reference's name and the data flags both runs get (one word), then the
# device run's own flags.
check_train() {
  local name=$1 tolerance=$2 reference=$3 line
  local -a data_flags
  read -r -a data_flags <<<"$4"
  shift 4
  if [[ ! -f "$OUT/$reference/train.json" ]] && ! timeout 300 "$BIN" train "${TRAIN[@]}" "${data_flags[@]}" \
    --device cpu --out-dir "$OUT/$reference" >"$OUT/$reference.log" 2>&1; then
    result "$name" 1 "the CPU reference run failed: $(last_line "$OUT/$reference.log")"
    return
  fi
  if ! timeout 300 "$BIN" train "${TRAIN[@]}" "${data_flags[@]}" --device "$DEVICE" "$@" --out-dir "$OUT/$name" \
    >"$OUT/$name.log" 2>&1; then
    result "$name" 1 "$(last_line "$OUT/$name.log")"
    return
  fi
  line=$("${COMPARE[@]}" train "$OUT/$reference/train.json" "$OUT/$name/train.json" "$tolerance")
  [[ $line == ok* ]]
  result "$name" $? "${line#* }"
}

check_pipeline() {
  local log="$OUT/pipeline.log" rc=0
  timeout 600 "$BIN" pipeline --device "$DEVICE" --data-path "$DATA" --out-dir "$OUT/pipeline" --ratios 0.5 \
    --criteria none --distill none --tome-rows=false --finetune-epochs 1 --decay-epochs 0.5 --steps-per-epoch 4 \
    --eval-images 256 --bench-iters 2 --quiet >"$log" 2>&1 || rc=$?
  [[ $rc -eq 0 && -f "$OUT/pipeline/report.json" ]]
  result pipeline $? "exit $rc; $(grep -m1 -i "report" "$log" || last_line "$log")"
}

numbers() {
  # Full size, or VITSLIM_SMOKE_NUMBERS=tiny: the same commands at toy sizes (the kit's CPU dry run).
  local batch=256 steps=12 images=3328 calib=1024 calib_batch=128 iters=10 warmup=3 compile=() layers=()
  if [[ "${VITSLIM_SMOKE_NUMBERS:-1}" == tiny ]]; then
    batch=2 steps=2 images=16 calib=4 calib_batch=2 iters=1 warmup=1 compile=(--no-compile) layers=(--layers 0,1,2,3,4,5,6)
  fi
  local synthetic=(--model deit_base --data-set synthetic --bf16 --device "$DEVICE" --batch-size "$batch" --epochs 1
    --warmup-epochs 0 --steps-per-epoch "$steps" --eval-images "$batch" --entropy-images 0 --drop-path 0.1 --quiet)
  # The pruned model: DeiT-B with those blocks' attention removed (random weights; speed only).
  timeout 300 "$BIN" export --model deit_base --remove-layers "$PRUNED" --format safetensors \
    --out "$OUT/deit_base_pruned.safetensors" >"$OUT/export_pruned.log" 2>&1 ||
    echo "numbers: export of the pruned model failed: $(last_line "$OUT/export_pruned.log")"
  local name weights
  for name in full pruned; do
    weights=()
    [[ $name == pruned ]] && weights=(--weights "$OUT/deit_base_pruned.safetensors")
    if timeout 420 "$BIN" train "${synthetic[@]}" "${weights[@]}" --calib-images "$images" --out-dir "$OUT/deit_base_$name" \
      >"$OUT/deit_base_$name.log" 2>&1; then
      "${COMPARE[@]}" mfu "$OUT/deit_base_$name/train.json" "$PEAK_TFLOPS" "$name" \
        "$([[ $name == pruned ]] && echo "$PRUNED")"
    else
      echo "numbers: DeiT-B $name training failed: $(last_line "$OUT/deit_base_$name.log")"
    fi
  done
  timeout 420 "$PY" "$ROOT/scripts/gpu_peer_train.py" --device "$DEVICE" --batch-size "$batch" --steps "$steps" "${compile[@]}" \
    2>"$OUT/peer.log" || echo "numbers: timm peer failed: $(last_line "$OUT/peer.log")"
  local t0=$SECONDS
  if timeout 420 "$BIN" search --model deit_base --data-set synthetic --calib-images "$calib" --batch-size "$calib_batch" --ratios 0.5 \
    "${layers[@]}" --bf16 --device "$DEVICE" --out "$OUT/search_deit_base.h5" --quiet >"$OUT/search_deit_base.log" 2>&1; then
    echo "NOSE search of DeiT-B at 50% over $calib synthetic images: $((SECONDS - t0)) s"
  else
    echo "numbers: DeiT-B search failed: $(last_line "$OUT/search_deit_base.log")"
  fi
  if timeout 300 "$BIN" bench --model deit_base --remove-layers "$PRUNED" --device "$DEVICE" --bf16 --batch-size "$batch" \
    --train=false --iters "$iters" --warmup "$warmup" --json "$OUT/deit_base_bench.json" >"$OUT/deit_base_bench.log" 2>&1; then
    "$PY" - "$OUT/deit_base_bench.json" "$batch" <<'PY'
import json, sys
full, pruned = json.load(open(sys.argv[1]))["models"][:2]
a, b = full["inference"]["images_per_s"], pruned["inference"]["images_per_s"]
print(f"DeiT-B bf16 batch {sys.argv[2]} inference: full {a:.0f} img/s, pruned {b:.0f} img/s, pruned/full {b / a:.3f}x "
      "(paper: 1.205x)")
PY
  else
    echo "numbers: DeiT-B bench failed: $(last_line "$OUT/deit_base_bench.log")"
  fi
}

if [[ -z "$OUT" ]]; then  # the default folder is the kit's own: each run starts it afresh
  OUT="$ROOT/build-bundle/smoke"
  rm -rf "$OUT"
elif [[ -e "$OUT" && -n "$(ls -A "$OUT")" ]]; then
  stop "VITSLIM_SMOKE_OUT=$OUT is not empty (the checks compare fresh outputs)"
fi
mkdir -p "$OUT"
preflight
DATA="$(data_dir)"
MODEL=(--model vit_fmnist --weights "$ROOT/pretrained/vit_fmnist.safetensors" --seed 0 --quiet)
FM=("${MODEL[@]}" --data-path "$DATA")
TRAIN=("${FM[@]}" --epochs 1 --warmup-epochs 0 --steps-per-epoch 3 --batch-size 64 --drop-path 0 --eval-images 256
  --entropy-images 64 --log-every 1 --tf32=false)
echo "gpu_smoke: $BIN on $DEVICE, data $DATA, outputs in $OUT"
check_nccl
check_shared_gpu
check_reducer
check_bench bench_fp32
check_bench bench_bf16 --bf16
check_compare entropy entropy "${FM[@]}" --calib-images 256 --out "$OUT/entropy-@.h5" --json "$OUT/entropy-@.json" -- \
  entropy "$OUT/entropy-ref.json" "$OUT/entropy-dev.json" 1e-4
check_compare search search "${FM[@]}" --calib-images 256 --ratios 0.25,0.5 --out "$OUT/search-@.h5" \
  --json "$OUT/search-@.json" -- \
  search "$OUT/search-ref.json" "$OUT/search-dev.json"
check_compare eval eval "${FM[@]}" --eval-images 256 --json "$OUT/eval-@.json" -- \
  eval "$OUT/eval-ref.json" "$OUT/eval-dev.json"
check_compare predict predict "${FM[@]}" --data-split test --limit 128 --out "$OUT/predict-@.csv" \
  --save-logits "$OUT/predict-@.safetensors" --force -- \
  tensors "$OUT/predict-ref.safetensors" "$OUT/predict-dev.safetensors" logits 1e-3
check_compare tome tome-sweep "${FM[@]}" --sweep-r 1,2 --eval-images 256 --bench-iters 1 --json "$OUT/tome-@.json" -- \
  tome "$OUT/tome-ref.json" "$OUT/tome-dev.json" 0.5
check_compare export_sample export "${MODEL[@]}" --format safetensors --out "$OUT/export-@.safetensors" \
  --sample "$OUT/sample-@.safetensors" --force -- \
  tensors "$OUT/sample-ref.safetensors" "$OUT/sample-dev.safetensors" logits 1e-3
check_train train_cuda 2e-3 train_cpu ""
check_train train_bf16 3e-2 train_cpu "" --bf16
# Augmented: the batches cross as uint8 planes and are normalised on the device (the same floats);
# with erasing its values are drawn there, so only a loose bound holds.
check_train train_planes 2e-3 train_cpu_aug "--aug deit --aa none --reprob 0"
check_train train_erase 1e-1 train_cpu_erase "--aug deit --aa none --reprob 0.5"
check_pipeline
echo "gpu_smoke: $failed check(s) failed ($((SECONDS - started)) s)"
[[ "${VITSLIM_SMOKE_NUMBERS:-1}" == 0 ]] || numbers
echo "gpu_smoke: done in $((SECONDS - started)) s"
[[ $failed -eq 0 ]]
