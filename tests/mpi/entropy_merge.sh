#!/usr/bin/env bash
# Entropy under mpiexec -np 2 (each rank a shard, statistics merged at rank 0) equals the 1-rank
# result on Debian's Fashion-MNIST; an error on the ranks ends the job with an error, no hang.
set -euo pipefail
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
ARGS=(entropy --calib-images 1000 --batch-size 64 --seed 5 --threads 1)
"$VITSLIM_BIN" "${ARGS[@]}" --out one.h5 --json one.json
"$MPIEXEC" -np 2 "$VITSLIM_BIN" "${ARGS[@]}" --out two.h5 --json two.json
"$VITSLIM_PYTHON" "$VITSLIM_SCRIPTS/check_trace.py" two.h5 --json two.json --expect-complete --expect-images 1000 \
  --compare one.json --world-size 2
# A bad input on every rank: non-zero exit within the timeout, no trace left.
if timeout 120 "$MPIEXEC" -np 2 "$VITSLIM_BIN" entropy --weights /nonexistent.pth --out bad.h5 2>err.txt; then
  echo "FAIL: bad input under mpiexec exited 0"; exit 1
fi
grep -q "nonexistent.pth" err.txt
test ! -e bad.h5 && test ! -e bad.h5.partial
echo "mpi entropy: 2 passed, 0 failed"
