#!/usr/bin/env bash
# vitslim entropy on Debian's Fashion-MNIST files: the trace is read by h5py while it is being
# written (SWMR), survives kill -9 up to its last flush, and the finished trace and JSON agree.
set -euo pipefail
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
PY="$VITSLIM_PYTHON"
CHECK="$VITSLIM_SCRIPTS/check_trace.py"

# 1. A complete run.
"$VITSLIM_BIN" entropy --calib-images 512 --batch-size 64 --out fm.h5 --json fm.json --threads 2
"$PY" "$CHECK" fm.h5 --json fm.json --expect-complete --expect-images 512

# 2. Read while being written, then killed: the partial file keeps every flushed row.
"$VITSLIM_BIN" entropy --calib-images 40000 --batch-size 32 --trace-points 400 --out live.h5 --threads 1 --quiet &
pid=$!
"$PY" "$CHECK" live.h5.partial --swmr --wait-rows 3 --while-pid "$pid"
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
test ! -e live.h5 || { echo "FAIL: a killed run left a final trace"; exit 1; }
"$PY" "$CHECK" live.h5.partial --swmr --min-rows 3 --expect-incomplete
echo "entropy e2e: 3 passed, 0 failed"
