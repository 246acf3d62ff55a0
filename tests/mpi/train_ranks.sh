#!/usr/bin/env bash
# Data-parallel training under mpiexec -np 2: 2 ranks with batch B/2 reach the weights of 1 rank
# with batch B (through dilution and the switch of blocks to Removed, which rebuilds the
# reducer's buckets); a rank that dies ends the job with an error, not a hang.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
T=(train --remove-layers 1,4 --epochs 3 --decay-epochs 2 --warmup-epochs 1 --steps-per-epoch 6 --mixup 0 --cutmix 0
   --eval-images 500 --entropy-images 0 --bucket-mb 1 --first-bucket-mb 0.05 --threads 1 --quiet)
"$BIN" "${T[@]}" --batch-size 16 --out-dir one
"$MPIEXEC" -np 2 "$BIN" "${T[@]}" --batch-size 8 --out-dir two
"$PY" "$VITSLIM_SCRIPTS/compare_weights.py" one/final.safetensors two/final.safetensors --tol 1e-5
"$PY" -c "import json; j = json.load(open('two/train.json')); assert j['world_size'] == 2 and j['global_batch'] == 16, j"

# The same with gradient accumulation: 2 ranks x 4 images x 2 micro-steps.
"$MPIEXEC" -np 2 "$BIN" "${T[@]}" --batch-size 4 --accum-steps 2 --out-dir accum
"$PY" "$VITSLIM_SCRIPTS/compare_weights.py" one/final.safetensors accum/final.safetensors --tol 1e-5

# Kill one rank mid-training: mpiexec must return non-zero well before the timeout.
"$MPIEXEC" -np 2 "$BIN" train --epochs 50 --warmup-epochs 1 --batch-size 8 --threads 1 --quiet \
  --out-dir dead >/dev/null 2>err.txt &
launcher=$!
wait_for_file "$launcher" "dead/train.h5.partial" || { echo "FAIL: the job ended before its trace"; exit 1; }
victim=$(pgrep -f "^$BIN train --epochs 50" | tail -n 1)
kill -9 "$victim"
rc=0
timeout 60 tail --pid="$launcher" -f /dev/null || { echo "FAIL: the job hung after a rank died"; kill -9 "$launcher"; exit 1; }
wait "$launcher" || rc=$?
[[ $rc -ne 0 ]] || { echo "FAIL: exit 0 after a rank died"; exit 1; }
echo "ok   rank killed, mpiexec exit $rc"
