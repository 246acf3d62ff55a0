#!/usr/bin/env bash
# Token merging (ToMe) in every job: entropy and search run the merging model; train fine-tunes
# with merging on while blocks dilute, merge's compact model reproduces the checkpoint and records
# the setting in its metadata, eval (also in bf16) and bench then apply it (and --tome-r 0 turns it
# off); a tome-sweep on the compact model reports its points and choice, and one on a model without
# attention shows that no setting merges anything.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
fail() { echo "FAIL: $*"; exit 1; }
T=(--threads 1 --quiet)
S=(--model vit_test --data-set synthetic --calib-images 64 --batch-size 16)

# entropy and search on a model that merges 2 tokens per block (vit_test: 17 tokens, 4 blocks)
"$BIN" entropy "${S[@]}" --tome-r 2 --out ent.h5 --json ent.json "${T[@]}"
"$BIN" entropy "${S[@]}" --out ent0.h5 --json ent0.json "${T[@]}"
"$BIN" search "${S[@]}" --tome-r 2 --ratios 0.5 --out s.h5 --json s.json "${T[@]}"
"$PY" - <<'PYEOF'
import json
a, b, s = json.load(open("ent.json")), json.load(open("ent0.json")), json.load(open("s.json"))
assert a["blocks"] != b["blocks"] and a["head"] != b["head"], "entropy with merging equals entropy without"
assert len(s["selections"][0]["layers"]) == 2, s["selections"]
print("ok   entropy and search run with merging")
PYEOF

# train (vit_fmnist, 50 tokens, 6 blocks) with merging while blocks 1 and 3 dilute; merge; the
# compact model carries the setting
"$BIN" train --remove-layers 1,3 --tome-r 3 --epochs 2 --decay-epochs 1 --warmup-epochs 0 --steps-per-epoch 6 \
  --batch-size 32 --eval-images 200 --entropy-images 0 "${T[@]}" --out-dir run
last=$(ls run/checkpoints/step-*.safetensors | tail -n 1)
"$BIN" merge --checkpoint "$last" --out compact.safetensors --json merge.json --quiet
"$PY" - <<'PYEOF'
import json
from safetensors import safe_open
m = json.load(open("merge.json"))
assert m["removed_layers"] == [1, 3] and m["max_abs_diff"] <= 1e-5, m
meta = safe_open("compact.safetensors", "pt").metadata()
assert meta["vitslim.token_merging"] == "r=3,3,3,3,3,3;prop_attn=1;mlp_blocks=0", meta
print("ok   merged with merging on; metadata", meta["vitslim.token_merging"])
PYEOF
E=(eval --weights compact.safetensors --eval-images 500 "${T[@]}")
"$BIN" "${E[@]}" --json with.json
"$BIN" "${E[@]}" --tome-r 0 --json without.json
"$BIN" "${E[@]}" --bf16 --json bf16.json
"$PY" - <<'PYEOF'
import json
a, b, h = json.load(open("with.json")), json.load(open("without.json")), json.load(open("bf16.json"))
assert h["bf16"] and abs(h["loss"] - a["loss"]) < 0.05, (h, a)
assert a["model"]["token_merging"].startswith("r=3,3,3,3,3,3") and b["model"]["token_merging"] == "", (a, b)
assert a["loss"] != b["loss"], "--tome-r 0 changed nothing"
print("ok   eval applies the recorded merging; --tome-r 0 turns it off:", a["loss"], b["loss"])
PYEOF
"$BIN" bench --weights compact.safetensors --batch-size 4 --iters 1 --warmup 0 --train=false --json b.json "${T[@]}" \
  >bench.txt
grep -q "^| pruned + ToMe |" bench.txt || { cat bench.txt; fail "no pruned + ToMe row"; }
"$PY" -c "
import json
r = json.load(open('b.json'))
assert r['token_merging'].startswith('r=3') and r['ratios']['merged']['macs'] < r['ratios']['macs'], r['ratios']
print('ok   bench rows:', [m['model'] for m in r['models']])"

"$BIN" tome-sweep --weights compact.safetensors --eval-images 200 --sweep-r 1,2,4 --sweep-start 0,2 \
  --bench-batch 4 --bench-iters 1 --json sweep.json --csv sweep.csv "${T[@]}" >sweep.txt
"$PY" - <<'PYEOF'
import csv, json
j = json.load(open("sweep.json"))
points = [(p["r"], p["start"]) for p in j["points"]]
assert points[0] == (0, 0) and len(points) == 7 and points[0] in points, points
assert any(p["pareto"] for p in j["points"]) and j["chosen"]["top1"] >= j["points"][0]["top1"] - 0.3, j["chosen"]
assert len(list(csv.DictReader(open("sweep.csv")))) == 7
print("ok   tome-sweep:", points, "chosen", j["chosen"]["r"], j["chosen"]["start"])
PYEOF
grep -q "^chosen within 0.30 points of r = 0" sweep.txt || { cat sweep.txt; fail "no choice printed"; }

# Every block without attention: no setting merges a token, each says so, and r = 0 stays chosen.
"$BIN" tome-sweep "${S[@]}" --remove-layers 0,1,2,3 --eval-images 32 --sweep-r 1,2 --bench-batch 4 --bench-iters 1 \
  --json none.json "${T[@]}" >none.txt
grep -q "| 2 | 0 | merges nothing (no attention where it would merge) |" none.txt || { cat none.txt; fail "not shown"; }
"$PY" -c "
import json
j = json.load(open('none.json'))
assert [p['merges'] for p in j['points']] == [True, False, False] and j['chosen']['r'] == 0, j
assert not any(p['pareto'] for p in j['points'][1:]), j
print('ok   tome-sweep: settings that merge nothing are shown as such and never chosen')"
echo "tome e2e: ok"
