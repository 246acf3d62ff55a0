#!/usr/bin/env bash
# scripts/gpu_smoke.sh: the first run of vitslim on a GPU machine, under 8 minutes on one GPU.
# It prints one PASS/FAIL line per check, then DeiT-B bf16 training img/s, MFU and the
# pruned/full speed-up, and exits 0 only when every check passed:
#   nccl_check     vitslim_nccl_check on one rank (all-reduce, max, broadcast, all-gather)
#   shared_gpu     2 ranks on 1 GPU are refused on every rank, with no hang
#   bench_fp32     bench --device cuda
#   bench_bf16     bench --device cuda --bf16
#   train_cuda     3 training steps + the end-of-epoch evaluation on CUDA fp32, from the same
#                  weights and batches as on CPU: the last step's loss within 2e-3 relative
#   train_bf16     the same in bf16 autocast, within 3e-2
#   reducer        vitslim_gpu_test: a 1-rank NCCL communicator + the reducer against plain
#                  backward, at accumulation 1 and 2
# Environment: VITSLIM_BUILD (the CUDA build: vitslim, vitslim_nccl_check, vitslim_gpu_test;
# default build-cuda/build), MPIEXEC (default mpiexec), VITSLIM_DATA (a Fashion-MNIST folder;
# default Debian's, else a small random one is written), VITSLIM_PEAK_TFLOPS (dense bf16 peak of
# the GPU for MFU; default 989, H100/H200 SXM), VITSLIM_SMOKE_OUT (kept outputs; default a
# temporary folder). Only python3's standard library is used.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${VITSLIM_BUILD:-$ROOT/build-cuda/build}"
MPIEXEC="${MPIEXEC:-mpiexec}"
PEAK_TFLOPS="${VITSLIM_PEAK_TFLOPS:-989}"
BIN="$BUILD/vitslim"
OUT="${VITSLIM_SMOKE_OUT:-$(mktemp -d)}"
mkdir -p "$OUT"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
FP32_TOLERANCE=2e-3
BF16_TOLERANCE=3e-2
failed=0

result() {  # name, status (0 = pass), detail
  if [[ $2 -eq 0 ]]; then echo "PASS $1: $3"; else echo "FAIL $1: $3"; failed=$((failed + 1)); fi
}

# A Fashion-MNIST folder: Debian's, or 512 + 256 random 28x28 images in the IDX format.
data_dir() {
  local debian=/usr/share/datasets/fashion-mnist
  if [[ -n "${VITSLIM_DATA:-}" ]]; then echo "$VITSLIM_DATA"; return; fi
  if [[ -f "$debian/train-images-idx3-ubyte.gz" ]]; then echo "$debian"; return; fi
  python3 - "$OUT/data" <<'PY'
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

json_field() {  # file, python expression over `j`
  python3 -c "import json, sys; j = json.load(open(sys.argv[1])); print($2)" "$1"
}

check_nccl() {
  local log="$OUT/nccl_check.log"
  timeout 120 "$BUILD/vitslim_nccl_check" >"$log" 2>&1
  local rc=$?
  grep -q "^PASS" "$log" && [[ $rc -eq 0 ]]
  result nccl_check $? "$(grep -m1 "NCCL allreduce" "$log" || tail -n 1 "$log")"
}

check_shared_gpu() {
  local log="$OUT/shared_gpu.log" rc=0
  local first="${CUDA_VISIBLE_DEVICES:-0}"
  CUDA_VISIBLE_DEVICES="${first%%,*}" timeout 180 "$MPIEXEC" -np 2 "$BIN" train --device cuda \
    "${TRAIN[@]}" --out-dir "$OUT/shared" >"$log" 2>&1 || rc=$?
  [[ $rc -ne 0 && $rc -ne 124 ]] && grep -q "share one GPU" "$log"
  result shared_gpu $? "exit $rc (124: hung); $(grep -m1 "share one GPU" "$log" || tail -n 1 "$log")"
}

check_bench() {  # name, extra flags
  local name=$1 log="$OUT/$1.log"
  shift
  timeout 300 "$BIN" bench --device cuda --batch-size 64 --iters 5 --warmup 2 "$@" --json "$OUT/$name.json" >"$log" 2>&1
  local rc=$?
  local rate=""
  [[ $rc -eq 0 ]] && rate=$(json_field "$OUT/$name.json" 'j["models"][0]["train_step"]["images_per_s"]' 2>/dev/null)
  if [[ -n "$rate" ]]; then
    result "$name" 0 "deit_tiny batch 64 training $rate img/s"
  else
    result "$name" 1 "$(tail -n 1 "$log")"
  fi
}

# Trains the same 3 steps (same weights, batches and mixing) on `device` with `flags`.
train_on() {  # out-dir name, flags...
  local name=$1
  shift
  timeout 300 "$BIN" train "${TRAIN[@]}" "$@" --out-dir "$OUT/$name" >"$OUT/$name.log" 2>&1
}

compare_train() {  # name, tolerance
  local name=$1 tolerance=$2 detail
  detail=$(python3 - "$OUT/train_cpu/train.json" "$OUT/$name/train.json" "$tolerance" <<'PY'
import json, sys
cpu, gpu = (json.load(open(p)) for p in sys.argv[1:3])
tol = float(sys.argv[3])
rel = abs(gpu["last_loss"] - cpu["last_loss"]) / abs(cpu["last_loss"])
ok = gpu["finished"] and gpu["last_top1"] >= 0 and rel <= tol
print(f"{'ok' if ok else 'bad'} step-3 loss {gpu['last_loss']:.5f} vs CPU {cpu['last_loss']:.5f} "
      f"(relative {rel:.1e}, limit {tol:g}), end-of-epoch top-1 {gpu['last_top1']:.2f}% vs CPU {cpu['last_top1']:.2f}%")
PY
  ) || detail="bad: no train.json ($(tail -n 1 "$OUT/$name.log"))"
  [[ $detail == ok* ]]
  result "$name" $? "${detail#* }"
}

check_train() {
  if ! train_on train_cpu --device cpu; then
    result train_cuda 1 "the CPU reference run failed: $(tail -n 1 "$OUT/train_cpu.log")"
    result train_bf16 1 "the CPU reference run failed"
    return
  fi
  train_on train_cuda --device cuda
  compare_train train_cuda "$FP32_TOLERANCE"
  train_on train_bf16 --device cuda --bf16
  compare_train train_bf16 "$BF16_TOLERANCE"
}

check_reducer() {
  local log="$OUT/reducer.log"
  timeout 300 "$BUILD/vitslim_gpu_test" >"$log" 2>&1
  local rc=$?
  [[ $rc -eq 0 ]] && ! grep -q "SKIPPED" "$log" && grep -q "PASSED" "$log"
  result reducer $? "$(grep -m1 -E "PASSED|FAILED|SKIPPED" "$log" || tail -n 1 "$log")"
}

# DeiT-B bf16 training at batch 256, full and with 5 of 12 attention layers removed.
report_deit_base() {
  local json="$OUT/deit_base.json"
  if ! timeout 600 "$BIN" bench --model deit_base --remove-layers 0,1,3,4,6 --device cuda --bf16 --batch-size 256 \
    --iters 10 --warmup 3 --json "$json" >"$OUT/deit_base.log" 2>&1; then
    result deit_base 1 "bench failed: $(tail -n 1 "$OUT/deit_base.log")"
    return
  fi
  python3 - "$json" "$PEAK_TFLOPS" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
peak = float(sys.argv[2]) * 1e12
full, pruned = j["models"]
for row in (full, pruned):
    rate = row["train_step"]["images_per_s"]
    mfu = 6 * row["macs_per_image"] * rate / peak  # forward + backward = 3 x 2 FLOPs per MAC
    print(f"DeiT-B bf16 batch 256 {row['model']}: {rate:.0f} img/s training, MFU {100 * mfu:.1f}% "
          f"of {sys.argv[2]} TFLOPS, inference {row['inference']['images_per_s']:.0f} img/s")
speedup = pruned["train_step"]["images_per_s"] / full["train_step"]["images_per_s"]
infer = pruned["inference"]["images_per_s"] / full["inference"]["images_per_s"]
print(f"pruned/full speed-up: training {speedup:.3f}x, inference {infer:.3f}x (paper: 1.205x)")
PY
}

DATA="$(data_dir)"
TRAIN=(--model vit_fmnist --data-path "$DATA" --epochs 1 --warmup-epochs 0 --steps-per-epoch 3 --batch-size 64
  --drop-path 0 --eval-images 256 --entropy-images 64 --log-every 1 --seed 0 --quiet)
echo "gpu_smoke: $BIN, data $DATA, outputs in $OUT"
check_nccl
check_shared_gpu
check_bench bench_fp32
check_bench bench_bf16 --bf16
check_train
check_reducer
report_deit_base
echo "gpu_smoke: $failed check(s) failed"
[[ $failed -eq 0 ]]
