#!/usr/bin/env bash
# vitslim pipeline end to end on Fashion-MNIST with short epochs: every stage runs (pretrain,
# entropy, the NOSE search and the other criteria, fine-tuning of every row for two seeds with
# distillation on one, merge, eval, bench, the ToMe sweep and its rows), the report gives mean ± std
# and every seed per row and states its claims against the noise, the figures are made from the
# traces; run again, every stage is reused and the report is the same; killed mid-way, the pipeline
# resumes and finishes. The shipped checkpoint is checked: a changed tensor or a wrong recorded
# top-1 is refused. The ToMe choice is made on injected speeds (--tome-speeds: a table in which r = 12
# is the fastest), so which r wins never depends on this machine's timings; the choice logic itself
# is checked exactly in tests/unit/test_tome.cpp.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
fail() { echo "FAIL: $*"; exit 1; }
one_error() {  # expected substring, command...
  local want="$1"; shift
  if "$@" >stdout.txt 2>stderr.txt; then fail "exit 0: $*"; fi
  [[ $(grep -vc '^\[vitslim\]' stderr.txt) -eq 1 ]] || { cat stderr.txt; fail "not one error line: $*"; }
  grep -q "vitslim: error: .*$want" stderr.txt || { cat stderr.txt; fail "error does not say '$want': $*"; }
}
printf 'r,start,images_per_s\n0,0,1000\n2,0,1100\n12,0,2500\n' >speeds.csv
P=(pipeline --pretrain-epochs 1 --finetune-epochs 2 --decay-epochs 1 --ratios 0.5 --steps-per-epoch 6
   --batch-size 32 --eval-images 300 --bench-iters 2 --threads 1 --quiet --tome-tune-images 300 --tome-sweep-r 2,12
   --tome-max-drop 100 --tome-speeds speeds.csv)
P2=("${P[@]}" --seeds 2)
"$BIN" "${P2[@]}" --out-dir run >out.txt
grep -q "| nose-0.5 |" out.txt || { cat out.txt; fail "report not printed"; }
"$PY" - <<'PYEOF'
import json
r = json.load(open("run/report.json"))
names = [row["run"] for row in r["runs"]]
assert names == ["unpruned", "nose-0.5", "nose-0.5+kd", "cosine-0.5", "random-0.5", "first-0.5"], names
for row in r["runs"]:
    assert len(row["top1_seeds"]) == 2 and len(row["delta_seeds"]) == 2, row
    assert abs(row["top1"] - sum(row["top1_seeds"]) / 2) < 1e-9, row
for row in r["runs"][1:]:
    assert len(row["removed_layers"]) == 3 and row["bench"]["params"] < 1.0, row
assert r["runs"][2]["distill"] and r["runs"][2]["removed_layers"] == r["runs"][1]["removed_layers"]
assert r["runs"][5]["removed_layers"] == [0, 1, 2]
claims = {c["claim"]: c for c in r["claims"]}
for want in ["NOSE at 50% without distillation vs unpruned", "NOSE beats random at 50%", "NOSE beats first at 50%",
             "NOSE beats cosine at 50%", "NOSE at 50% with distillation vs unpruned", "baseline top-1"]:
    assert want in claims and "met" in claims[want], (want, r["claims"])
assert claims["NOSE beats random at 50%"]["seeds"] == 2
assert [s["criterion"] for s in r["selections"]] == ["nose", "cosine", "random", "first"], r["selections"]
assert all(isinstance(v, float) for v in r["stages"].values()), r["stages"]
assert all(row["step_ms"] > 0 for row in r["runs"]), [row["step_ms"] for row in r["runs"]]
t = r["token_merging"]
# With a budget of 100 points the fastest point of the injected table wins: r = 12 (it takes the 3
# attention blocks from 50 tokens down to 14); the unpruned model cannot merge 12 in all 6.
assert t["row"] == "nose-0.5" and t["swept"] == [2, 12] and t["r"] == 12, t
sweep = json.load(open("run/tome-sweep-nose-0.5.json"))
assert sweep["speeds"].endswith("speeds.csv"), sweep["speeds"]
assert [(p["r"], p["images_per_s"]) for p in sweep["points"]] == [(0, 1000), (2, 1100), (12, 2500)], sweep["points"]
assert len(t["pruned"]["top1_seeds"]) == 2 and t["pruned"]["macs"] < r["runs"][1]["bench"]["macs"], t
assert "unpruned" not in t, t
print("ok   token merging:", t)
p = r["plan"]
assert p["runtime"] == "libtorch" and p["target_speedup"] == 1.2 and p["unpruned_probe_top1"] is not None, p
assert p["fixed_half"] == "remove {" + ",".join(map(str, r["runs"][1]["removed_layers"])) + "}", p
plan = json.load(open("run/plan/plan.json"))
assert plan["met"] == p["met"] and len(plan["candidates"]) == 4, plan["candidates"]  # unpruned + 1 to 3 removed
print("ok   plan stage:", p["chosen"] or "not met", round(p["speedup"], 3))
print("ok   report:", [(row["run"], round(row["top1"], 2), round(row["top1_std"], 2)) for row in r["runs"]])
PYEOF
grep -q "± " run/report.md || fail "no mean ± std in report.md"
grep -q "^## Token merging (ToMe) on nose-0.5" run/report.md || fail "no token-merging section in report.md"
grep -q "^## Plan for a 1.2x speed-up on libtorch" run/report.md || fail "no plan section in report.md"
test -s run/tome-sweep-nose-0.5.csv || fail "no tome-sweep CSV"
grep -q "^| nose-0.5 + ToMe r=12 |" run/report.md || fail "no NOSE + ToMe row in report.md"
grep -q "^No unpruned + ToMe row: --tome-r: block" run/report.md || fail "no reason for the missing unpruned + ToMe row"
grep -q "^- Cost of distillation (the teacher's forward pass): [0-9.]* ms per step against [0-9.]* ms" run/report.md ||
  fail "no measured cost of distillation in report.md"
"$PY" "$VITSLIM_SCRIPTS/plot_pipeline.py" run
for png in entropy search training ratios; do test -s "run/plots/$png.png" || fail "no $png.png"; done

# Again: every stage is reused, the results are the same.
cp run/report.json first.json
"$BIN" "${P2[@]}" --out-dir run >/dev/null
"$PY" - <<'PYEOF'
import json
a, b = json.load(open("first.json")), json.load(open("run/report.json"))
assert all(v == "reused" for v in b["stages"].values()), b["stages"]
assert [r["top1_seeds"] for r in a["runs"]] == [r["top1_seeds"] for r in b["runs"]]
print("ok   rerun: every stage reused")
PYEOF

# Killed during a fine-tuning run: the rerun resumes and finishes with the same report rows. With
# one seed: seed 0 of every row is the same run whatever --seeds says.
"$BIN" "${P[@]}" --out-dir killed >/dev/null &
pid=$!
wait_for_file "$pid" "killed/finetune-nose-0.5-seed0/checkpoints/step-*.safetensors" ||
  fail "no fine-tuning checkpoint before the pipeline ended"
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
test ! -e killed/report.json || fail "the pipeline finished before the kill"
"$BIN" "${P[@]}" --out-dir killed >/dev/null
"$PY" - <<'PYEOF'
import json
a, b = json.load(open("first.json")), json.load(open("killed/report.json"))
assert [r["top1_seeds"][:1] for r in a["runs"]] == [r["top1_seeds"] for r in b["runs"]], (a["runs"], b["runs"])
assert b["stages"]["pretrain"] == "reused", b["stages"]
print("ok   killed and resumed: same results")
PYEOF

# Starting weights with a provenance record must still be what it records.
W=run/pretrain/final.safetensors
"$PY" - "$W" <<'PYEOF'
import json, sys
from safetensors.torch import load_file, save_file
from safetensors import safe_open
with safe_open(sys.argv[1], "pt") as f:
    meta = f.metadata()
sd = load_file(sys.argv[1])
changed = dict(sd)
changed["head.bias"] = sd["head.bias"] + 1e-3
save_file(changed, "changed.safetensors", metadata=meta)
prov = json.loads(meta["vitslim.provenance"])
prov["eval"]["top1"] = prov["eval"]["top1"] + 5
save_file(sd, "claims.safetensors", metadata=dict(meta, **{"vitslim.provenance": json.dumps(prov)}))
PYEOF
Q=(pipeline --finetune-epochs 2 --decay-epochs 1 --ratios 0.5 --steps-per-epoch 2 --batch-size 32 --eval-images 300
   --threads 1 --quiet)
one_error "changed.safetensors: the tensors hash to" "$BIN" "${Q[@]}" --pretrained changed.safetensors --out-dir p1
one_error "claims.safetensors: evaluates to" "$BIN" "${Q[@]}" --pretrained claims.safetensors --out-dir p2
one_error "--seeds" "$BIN" "${Q[@]}" --seeds 0 --out-dir p3
one_error "--criteria must be" "$BIN" "${Q[@]}" --criteria cosine,loudest --out-dir p4
one_error "exclude each other" "$BIN" "${Q[@]}" --pretrained "$W" --pretrain-epochs 2 --out-dir p5
one_error "--tome-r: the pipeline chooses r and the start block itself" "$BIN" "${Q[@]}" --tome-r 2 --out-dir p6
echo "ok   provenance checked; bad --seeds, --criteria refused"

# The report records the starting weights relative to the working directory (reports get
# committed; an absolute path is this machine's).
"$BIN" "${Q[@]}" --pretrained "$PWD/$W" --criteria random --distill none --tome-rows=false --plan-target-speedup 0 \
  --calib-images 128 --bench-iters 1 --out-dir abs >/dev/null
"$PY" -c 'import json, sys; p = json.load(open("abs/report.json"))["pretrained"]; assert p == sys.argv[1], p' "$W"
grep -q "^Started from \`$W\`" abs/report.md || fail "report.md does not name $W relative to the working directory"
echo "ok   the report records the weights relative to the working directory"
echo "pipeline e2e: ok"
