#!/usr/bin/env bash
# `vitslim plan` on vit_test: candidates timed in-process (libtorch) and through a fake ONNX timer
# whose milliseconds follow the file size (fewer parameters: faster), so the choice is known; the
# report, plan.json and plan-train.ini; a second target on the same out-dir times nothing; a plan
# whose timer fails after its first group keeps that group and a rerun times only the rest; an
# unreachable target writes its report and exits non-zero; bad targets, runtimes, a missing engine
# and a search of another model are one error line each.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
fail() { echo "FAIL: $*"; exit 1; }
T=(--threads 1 --quiet)
M=(--model vit_test --data-set synthetic --calib-images 64 --batch-size 16)

# The fake runtime: `--check` passes unless FAKE_MISSING; each timing run appends a line to calls.txt
# and fails when FAKE_FAIL_AT names its run number.
cat > fake_timer.sh <<EOF
#!/usr/bin/env bash
if [ "\$1" = --check ]; then
  [ -n "\${FAKE_MISSING:-}" ] && { echo "fakert is not installed"; exit 3; }
  exit 0
fi
echo run >> "$WORK/calls.txt"
n=\$(wc -l < "$WORK/calls.txt")
[ "\${FAKE_FAIL_AT:-0}" = "\$n" ] && { echo "fake timer: induced failure"; exit 1; }
"$PY" - "\$1" "\$2" <<'PYEOF'
import json, os, sys
req = json.load(open(sys.argv[1]))
json.dump({"median_ms": [os.path.getsize(p) / 1000.0 for p in req["models"]], "engine_version": "fake"},
          open(sys.argv[2], "w"))
PYEOF
EOF
chmod +x fake_timer.sh
PB=(plan "${M[@]}" --tome-r 0,1 --probe-steps 4 --probe-images 32 --rounds 1 --warmup 0 --timer fake_timer.sh --threads 1)
P=("${PB[@]}" --quiet)

# 1. A plan on two runtimes (libtorch timed here, onnxruntime by the fake timer). --max-drop alone is
# always met (the unpruned model is within it), so no assertion rests on this machine's timings.
"$BIN" "${P[@]}" --runtime libtorch,onnxruntime --max-drop 100 --out-dir plan > out1.txt
"$PY" - <<'PYEOF'
import json
p = json.load(open("plan/plan.json"))
assert p["met"] and p["runtimes"] == ["libtorch", "onnxruntime"], p["met"]
cands = p["candidates"]
assert cands[0]["label"] == "unpruned" and len(cands) == 6, [c["label"] for c in cands]  # (0, 1, 2 removed) x r
for c in cands:
    assert set(c["timings"]) == {"libtorch", "onnxruntime"}, c
for runtime, front in p["fronts"].items():
    speeds = [cands[i]["timings"][runtime]["speedup"] for i in front]
    assert speeds == sorted(speeds, reverse=True), (runtime, speeds)
print("ok   plan on libtorch and the fake onnxruntime")
PYEOF
[ "$(wc -l < calls.txt)" = 1 ] || fail "expected one timer run, got $(wc -l < calls.txt)"

# 2. A speed target on the fake runtime (its timings follow the file sizes: the choice is known),
# on the same out-dir: nothing is timed or probed again
"$BIN" "${P[@]}" --runtime onnxruntime --target-speedup 1.05 --out-dir plan > out2.txt
"$PY" - <<'PYEOF'
import json
p = json.load(open("plan/plan.json"))
cands = p["candidates"]
ort = p["choices"]["onnxruntime"]
chosen = cands[ort["chosen"]]
assert chosen["timings"]["onnxruntime"]["speedup"] >= 1.05 and chosen["removed"], chosen
assert chosen["probe_top1"] is not None and p["unpruned_probe_top1"] is not None
print("ok   a speed target on the fake onnxruntime:", chosen["label"])
PYEOF
grep -q "^## onnxruntime" plan/report.md || fail "report.md has no onnxruntime section"
grep -q "remove-layers = " plan/plan-train.ini || fail "plan-train.ini names no layers"
"$BIN" train --config plan/plan-train.ini --dump-config > train.ini || fail "plan-train.ini is not a train config"
[ "$(wc -l < calls.txt)" = 1 ] || fail "the second target timed again"
"$BIN" "${P[@]}" --runtime libtorch,onnxruntime --max-drop 50 --out-dir plan > out2b.txt
[ "$(wc -l < calls.txt)" = 1 ] || fail "the third target timed again"
grep -q "0 candidate(s) to time" <("$BIN" "${PB[@]}" --runtime onnxruntime --max-drop 100 --out-dir plan 2>&1) \
  || fail "a cached plan timed candidates"
echo "ok   a second target on the same out-dir uses the timing cache"
if "$BIN" "${P[@]}" --runtime onnxruntime --target-speedup 1.05 --seed 7 --out-dir plan 2> err_seed.txt; then
  fail "a plan with another seed reused the out-dir's search and probes"
fi
grep -q "holds a plan of other weights, data, search, ToMe or probe settings" err_seed.txt || fail "$(cat err_seed.txt)"

# 3. Interrupted timing: the first group is kept, the rerun times the rest
rm -f calls.txt
FAKE_FAIL_AT=2 "$BIN" "${P[@]}" --runtime onnxruntime --criteria random,first --target-speedup 1.05 --out-dir resume \
  > out3.txt 2> err3.txt && fail "an induced timer failure passed"
grep -q "induced failure" err3.txt || fail "the timer's message is missing: $(cat err3.txt)"
[ -f resume/timings.json ] || fail "the first group's timings were not kept"
[ ! -e resume/plan.json ] || fail "a failed plan wrote plan.json"
"$PY" -c "import json; e = json.load(open('resume/timings.json'))['entries']; assert sum(map(len, e.values())) == 9, e"
"$BIN" "${P[@]}" --runtime onnxruntime --criteria random,first --target-speedup 1.05 --out-dir resume > out4.txt
[ "$(wc -l < calls.txt)" = 3 ] || fail "the rerun did not resume: $(wc -l < calls.txt) timer runs"
echo "ok   an interrupted plan resumes its timing"

# 4. An unreachable target: report written, exit non-zero, no training config
if "$BIN" "${P[@]}" --runtime onnxruntime --target-speedup 50 --out-dir plan > out5.txt 2> err5.txt; then
  fail "an unreachable target passed"
fi
[ "$(grep -c . err5.txt)" = 1 ] || fail "more than one error line: $(cat err5.txt)"
grep -q "no candidate reaches 50x" err5.txt || fail "$(cat err5.txt)"
grep -q "the target is not met" plan/report.md || fail "report.md does not say the target is not met"
[ ! -e plan/plan-train.ini ] || fail "plan-train.ini left from the met target"
echo "ok   an unreachable target: $(cat err5.txt)"

# 5. Bad input: one line each, non-zero, nothing written
expect_error() {  # expect_error PATTERN ARGS...
  local pattern="$1"
  shift
  if "$BIN" "$@" > bad_out.txt 2> bad_err.txt; then fail "accepted: $*"; fi
  [ "$(grep -c . bad_err.txt)" = 1 ] || fail "not one line for $*: $(cat bad_err.txt)"
  grep -q -- "$pattern" bad_err.txt || fail "no '$pattern' in: $(cat bad_err.txt)"
  [ ! -e bad ] || fail "$* left its out-dir"
}
expect_error "give one speed target" "${P[@]}" --target-speedup 1.2 --target-latency-ms 3 --out-dir bad
expect_error "no target" "${P[@]}" --out-dir bad
expect_error "unknown runtime 'tensorrt'" "${P[@]}" --target-speedup 1.2 --runtime tensorrt --out-dir bad
FAKE_MISSING=1 expect_error "runtime openvino: fakert is not installed" "${P[@]}" --target-speedup 1.2 \
  --runtime openvino --out-dir bad
"$PY" - <<'PYEOF'
import json
s = json.load(open("plan/search.json"))
s["model"]["depth"] = 12
json.dump(s, open("other_search.json", "w"))
PYEOF
expect_error "a search of another model" "${P[@]}" --target-speedup 1.2 --search other_search.json --out-dir bad
expect_error "--max-drop needs probes" plan "${M[@]}" --max-drop 1 --probe-steps 0 --out-dir bad
echo "ok   bad targets, runtimes, engines and search files"
