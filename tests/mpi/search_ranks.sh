#!/usr/bin/env bash
# NOSE search under mpiexec -np 2 gives exactly the 1-rank selection and scores (shards are
# merged in shard order whichever rank scored them); a rank that dies ends the job, no hang.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
S=(search --calib-images 512 --batch-size 32 --ratios 0.25,0.5 --threads 1 --quiet)
"$VITSLIM_BIN" "${S[@]}" --out one.h5 --json one.json
"$MPIEXEC" -np 2 "$VITSLIM_BIN" "${S[@]}" --out two.h5 --json two.json
"$VITSLIM_PYTHON" "$VITSLIM_SCRIPTS/compare_search.py" one.json two.json
"$VITSLIM_PYTHON" -c "import json; j=json.load(open('two.json')); assert j['world_size'] == 2"

# Kill one rank mid-search: mpiexec must return non-zero, not hang (`timeout 60`: a hang guard).
"$MPIEXEC" -np 2 "$VITSLIM_BIN" search --calib-images 8192 --batch-size 32 --ratios 0.5 --threads 1 --quiet \
  --out dead.h5 >/dev/null 2>err.txt &
launcher=$!
for _ in $(seq 1 200); do
  victim=$(pgrep -f "^$VITSLIM_BIN search --calib-images 8192" | tail -n 1 || true)
  [[ -n "$victim" ]] && break
  sleep 0.05
done
# Mid-search: once the search's trace exists (the ranks have started scoring).
wait_for_file "$launcher" "dead.h5.partial" || { echo "FAIL: the job ended before its trace"; exit 1; }
kill -9 "$victim"
rc=0
timeout 60 tail --pid="$launcher" -f /dev/null || { echo "FAIL: the job hung after a rank died"; kill -9 "$launcher"; exit 1; }
wait "$launcher" || rc=$?
[[ $rc -ne 0 ]] || { echo "FAIL: exit 0 after a rank died"; exit 1; }
test ! -e dead.h5
echo "ok   rank killed, mpiexec exit $rc: $(grep -m1 -i -E "exited|killed|signal" err.txt || true)"
echo "mpi search: 2 passed, 0 failed"
