#!/usr/bin/env bash
# vitslim plan under mpiexec -np 2: the search and the probes run on both ranks, rank 0 times the
# candidates and writes the outputs; the choice and every timing are in plan.json, and each probe
# evaluated what rank 0 trained (the ranks wait for its final weights).
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
"$MPIEXEC" -np 2 "$VITSLIM_BIN" plan --model vit_test --data-set synthetic --calib-images 64 --batch-size 16 \
  --tome-r 0,1 --probe-steps 2 --probe-images 32 --rounds 1 --threads 1 --quiet --max-drop 100 --out-dir plan
"$VITSLIM_PYTHON" - <<'PYEOF'
import json
p = json.load(open("plan/plan.json"))
assert p["met"] and p["unpruned_probe_top1"] is not None, p
probed = [c for c in p["candidates"] if c["on_front"]]
assert probed and all(c["probe_top1"] is not None for c in probed), probed
assert all("libtorch" in c["timings"] for c in p["candidates"])
print("ok   plan on 2 ranks:", p["candidates"][p["choices"]["libtorch"]["chosen"]]["label"])
PYEOF
