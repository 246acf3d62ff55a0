#!/usr/bin/env bash
# vitslim search end to end on Debian's Fashion-MNIST: the prefix cache changes no score, the
# exhaustive search is never worse than greedy, a search killed with -9 resumes from its file
# without re-scoring finished items and ends as an uninterrupted run, and bad input is refused.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
CMP="$VITSLIM_SCRIPTS/compare_search.py"
S=(search --calib-images 256 --batch-size 32 --ratios 0.25,0.5 --threads 1 --quiet)
passed=0

"$BIN" "${S[@]}" --out cached.h5 --json cached.json
"$BIN" "${S[@]}" --cache-mb 0 --out naive.h5 --json naive.json
"$PY" "$CMP" cached.json naive.json && passed=$((passed + 1))
"$PY" - <<'PYEOF'
import json
c, n = json.load(open("cached.json")), json.load(open("naive.json"))
assert c["block_forwards"] < n["block_forwards"], (c["block_forwards"], n["block_forwards"])
assert n["block_forwards"] == n["naive_block_forwards"]
print(f"block-forwards cached {c['block_forwards']} vs naive {n['block_forwards']}")
PYEOF
passed=$((passed + 1))

"$BIN" "${S[@]}" --exhaustive --out exhaustive.h5 --json exhaustive.json
"$PY" "$CMP" cached.json exhaustive.json --exhaustive-not-worse && passed=$((passed + 1))

# A model whose block 0 attention is already removed: block 0 is no candidate; the pooled-feature estimator (by its older name).
"$BIN" "${S[@]}" --remove-layers 0 --estimator cls --out prog.h5 --json prog.json
"$PY" - <<'PYEOF'
import json
r = json.load(open("prog.json"))
assert r["estimator"] == "pooled" and 0 not in r["candidate_layers"], r["candidate_layers"]
assert all(0 not in s["layers"] for s in r["selections"])
print("search on a model with block 0 removed:", [s["layers"] for s in r["selections"]])
PYEOF
passed=$((passed + 1))

# A search result selects the layers to remove in other jobs: FILE@RATIO.
"$BIN" entropy --calib-images 64 --remove-layers cached.json@0.5 --out sel.h5 --json sel.json --quiet >/dev/null
"$PY" - <<'PYEOF'
import json
want = [s for s in json.load(open("cached.json"))["selections"] if s["ratio"] == 0.5][0]["layers"]
got = json.load(open("sel.json"))["model"]["removed_layers"]
assert got == want, (got, want)
print(f"--remove-layers cached.json@0.5 removed {got}")
PYEOF
passed=$((passed + 1))
if "$BIN" entropy --remove-layers cached.json@0.3 --out x.h5 2>err.txt; then echo "FAIL: unknown ratio accepted"; exit 1; fi
grep -qF "no selection for ratio 0.3 (has 0.25, 0.5)" err.txt && passed=$((passed + 1))

# Kill -9 once items are in the file, then resume with the same command.
R=(search --calib-images 3072 --batch-size 32 --ratios 0.5 --threads 1 --quiet)
"$BIN" "${R[@]}" --out full.h5 --json full.json
"$BIN" "${R[@]}" --out killed.h5 --json killed.json &
pid=$!
"$PY" - "$pid" <<'PYEOF'
import os, time, h5py, sys
# Until 150 items are in the file, or the search has ended without them (no clock decides).
while True:
    try:
        os.kill(int(sys.argv[1]), 0)
        running = True
    except ProcessLookupError:
        running = False
    try:
        with h5py.File("killed.h5.partial", "r", libver="latest", swmr=True) as f:
            d = f["search/item_keys"]; d.refresh()
            if d.shape[0] >= 150:
                sys.exit(0)
    except (OSError, KeyError):
        pass
    if not running:
        sys.exit("FAIL: the search ended before it wrote 150 items")
    time.sleep(0.05)
PYEOF
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
test ! -e killed.h5 && test ! -e killed.json
"$BIN" "${R[@]}" --out killed.h5 --json killed.json
"$PY" "$CMP" full.json killed.json --expect-resumed && passed=$((passed + 1))
test ! -e killed.h5.partial && test ! -e killed.h5.resume

# Bad input: one error line, non-zero exit, no output.
bad() {  # expected substring, args...
  local want="$1"; shift
  if "$BIN" search --out bad.h5 --json bad.json "$@" 2>err.txt >/dev/null; then echo "FAIL: accepted $*"; exit 1; fi
  grep -qF -- "$want" err.txt || { echo "FAIL: '$want' not in: $(cat err.txt)"; exit 1; }
  test ! -e bad.h5 && test ! -e bad.h5.partial && test ! -e bad.json || { echo "FAIL: output left for $*"; exit 1; }
  echo "ok   $(grep 'error' err.txt)"
  passed=$((passed + 1))
}
bad "--ratios: 1.5 is not in (0, 1)" --ratios 1.5
bad "--ratios: 0 is not in (0, 1)" --ratios 0,0.5
bad "asks for 3 layers but only 2 are candidates" --ratios 0.5 --layers 0,1 --calib-images 64
bad "--layers: block 9 does not exist" --layers 0,9 --calib-images 64
bad "smaller than one batch" --calib-images 10 --batch-size 64
bad "wrong shape [blocks.1.mlp.fc1.weight" --model vit_test --weights "$VITSLIM_TEST_DATA/wrong_shape.pth" --data-set synthetic --calib-images 64
bad "--estimator must be logits, pooled or cls" --estimator tokens
head -c 4096 /dev/urandom >garbage.h5
bad_out() {  # expected substring, existing file to use as --out
  local want="$1" file="$2"
  cp "$file" target.h5
  if "$BIN" search --out target.h5 --calib-images 64 2>err.txt >/dev/null; then echo "FAIL: accepted $file"; exit 1; fi
  grep -qF -- "$want" err.txt || { echo "FAIL: '$want' not in: $(cat err.txt)"; exit 1; }
  cmp -s "$file" target.h5 || { echo "FAIL: $file was modified"; exit 1; }
  echo "ok   $(grep 'error' err.txt)"
  passed=$((passed + 1))
}
bad_out "not a readable HDF5 file" garbage.h5
"$BIN" entropy --calib-images 64 --out entropy.h5 --quiet >/dev/null
bad_out "is not a vitslim search result (schema 'vitslim-trace/1')" entropy.h5
bad_out "comes from a search with other weights, data or estimator" cached.h5
echo "search e2e: $passed passed, 0 failed"
