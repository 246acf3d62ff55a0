#!/usr/bin/env bash
# vitslim pipeline end to end on Fashion-MNIST with short epochs: every stage runs (pretrain,
# entropy, search, fine-tuning with ablations, merge, eval, bench), the report names the runs and
# the goal, the figures are made from the traces; run again, every stage is reused and the report
# is the same; killed mid-way, the pipeline resumes and finishes.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
fail() { echo "FAIL: $*"; exit 1; }
P=(pipeline --pretrain-epochs 1 --finetune-epochs 2 --decay-epochs 1 --ratios 0.5 --steps-per-epoch 20
   --batch-size 32 --eval-images 300 --bench-iters 2 --threads 1 --quiet)
"$BIN" "${P[@]}" --out-dir run >out.txt
grep -q "| nose-0.5 |" out.txt || { cat out.txt; fail "report not printed"; }
"$PY" - <<'PYEOF'
import json
r = json.load(open("run/report.json"))
names = [row["run"] for row in r["runs"]]
assert names == ["unpruned", "nose-0.5", "random-0.5", "first-0.5"], names
for row in r["runs"][1:]:
    assert len(row["removed_layers"]) == 3 and row["bench"]["params"] < 1.0, row
assert r["runs"][3]["removed_layers"] == [0, 1, 2]
assert r["goal"]["run"] == "nose-0.5" and "met" in r["goal"], r["goal"]
assert all(isinstance(v, float) for v in r["stages"].values()), r["stages"]
print("ok   report:", [(row["run"], round(row["top1"], 2)) for row in r["runs"]])
PYEOF
"$PY" "$VITSLIM_SCRIPTS/plot_pipeline.py" run
for png in entropy search training; do test -s "run/plots/$png.png" || fail "no $png.png"; done

# Again: every stage is reused, the results are the same.
cp run/report.json first.json
"$BIN" "${P[@]}" --out-dir run >/dev/null
"$PY" - <<'PYEOF'
import json
a, b = json.load(open("first.json")), json.load(open("run/report.json"))
assert all(v == "reused" for v in b["stages"].values()), b["stages"]
assert [r["top1"] for r in a["runs"]] == [r["top1"] for r in b["runs"]]
print("ok   rerun: every stage reused")
PYEOF

# Killed during a fine-tuning run: the rerun resumes and finishes with the same report rows.
"$BIN" "${P[@]}" --out-dir killed >/dev/null &
pid=$!
for _ in $(seq 1 1200); do
  compgen -G "killed/finetune-nose-0.5/checkpoints/step-*.safetensors" >/dev/null && break
  sleep 0.05
done
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
test ! -e killed/report.json || fail "the pipeline finished before the kill"
"$BIN" "${P[@]}" --out-dir killed >/dev/null
"$PY" - <<'PYEOF'
import json
a, b = json.load(open("first.json")), json.load(open("killed/report.json"))
assert [r["top1"] for r in a["runs"]] == [r["top1"] for r in b["runs"]], (a["runs"], b["runs"])
assert b["stages"]["pretrain"] == "reused", b["stages"]
print("ok   killed and resumed: same results")
PYEOF
echo "pipeline e2e: ok"
