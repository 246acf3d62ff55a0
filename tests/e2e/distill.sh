#!/usr/bin/env bash
# Distillation and the search criteria end to end on Fashion-MNIST: a dilution run taught by the
# weights it starts from (--teacher start) records its teacher in train.json and in its
# checkpoints, resumes bit-exactly after a kill, and refuses a resume with another teacher or
# without one; a teacher with other classes is refused naming both files; every
# `search --criterion` writes the JSON and HDF5 a NOSE search writes, and its result feeds
# `train --remove-layers FILE@RATIO`; bad flags are refused in one line.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
CMP="$VITSLIM_SCRIPTS/compare_weights.py"
fail() { echo "FAIL: $*"; exit 1; }
one_error() {  # expected substring, command...: exit != 0 and one "vitslim: error:" line naming it
  local want="$1"; shift
  if "$@" >stdout.txt 2>stderr.txt; then fail "exit 0: $*"; fi
  [[ $(grep -vc '^\[vitslim\]' stderr.txt) -eq 1 ]] || { cat stderr.txt; fail "not one error line: $*"; }
  grep -q "vitslim: error: .*$want" stderr.txt || { cat stderr.txt; fail "error does not say '$want': $*"; }
}
S=(--threads 1 --batch-size 32 --eval-images 300 --entropy-images 0 --quiet)
"$BIN" train "${S[@]}" --epochs 2 --warmup-epochs 1 --steps-per-epoch 15 --mixup 0 --cutmix 0 --out-dir start
W=start/final.safetensors
K=(train "${S[@]}" --weights "$W" --remove-layers 1,3 --epochs 3 --decay-epochs 1 --warmup-epochs 1 --steps-per-epoch 10
   --checkpoint-steps 5 --teacher start --distill soft --distill-tau 2 --distill-alpha 0.7)
"$BIN" "${K[@]}" --out-dir full
"$PY" - <<'PYEOF'
import glob, json
from safetensors import safe_open
with safe_open(sorted(glob.glob("full/checkpoints/step-*.safetensors"))[-1], "np") as f:
    state = json.loads(f.metadata()["vitslim.train_state"])
assert state["teacher"].startswith("soft distillation (alpha 0.7, tau 2) from teacher "), state["teacher"]
with safe_open("full/final.safetensors", "np") as f:
    prov = json.loads(f.metadata()["vitslim.provenance"])
assert prov["job"] == "train" and prov["eval"]["images"] == 300 and len(prov["tensors"]) == 16, prov
print("ok   distilled run: teacher in the checkpoint state, provenance in final.safetensors")
PYEOF

# Killed after its first checkpoint and resumed: the same weights as the uninterrupted run.
"$BIN" "${K[@]}" --out-dir killed &
pid=$!
wait_for_file "$pid" "killed/checkpoints/step-*.safetensors" || { echo "FAIL: no checkpoint before the run ended"; exit 1; }
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
"$BIN" "${K[@]}" --out-dir killed --resume
"$PY" "$CMP" full/final.safetensors killed/final.safetensors
echo "ok   distilled run killed and resumed: bit-identical"

# Resuming with another teacher, or none, is refused before any step.
R=(train "${S[@]}" --weights "$W" --remove-layers 1,3 --epochs 3 --decay-epochs 1 --warmup-epochs 1 --steps-per-epoch 10
   --checkpoint-steps 5)
mkdir -p swap && cp -r full/checkpoints swap/
one_error "was trained with soft distillation (alpha 0.7, tau 2)" "$BIN" "${R[@]}" --teacher start --distill soft \
  --distill-tau 4 --distill-alpha 0.7 --out-dir swap --resume
one_error "not no distillation" "$BIN" "${R[@]}" --out-dir swap --resume
echo "ok   resume refuses another teacher and no teacher"

# A teacher of another shape, and flags that make no sense.
"$PY" - <<'PYEOF'
from safetensors.torch import load_file, save_file
import torch
sd = load_file("start/final.safetensors")
sd["head.weight"], sd["head.bias"] = torch.zeros(7, sd["head.weight"].shape[1]), torch.zeros(7)
save_file(sd, "seven.safetensors", metadata={"vitslim.num_heads": "4"})
PYEOF
one_error "seven.safetensors (7 classes" "$BIN" "${R[@]}" --teacher seven.safetensors --distill hard --out-dir bad1
one_error "needs --teacher" "$BIN" train "${S[@]}" --distill soft --out-dir bad2
one_error "only with --distill" "$BIN" train "${S[@]}" --teacher start --out-dir bad3
one_error "there is no teacher" "$BIN" train "${S[@]}" --teacher start --distill hard --epochs 2 --warmup-epochs 1 \
  --out-dir bad4
echo "ok   bad teachers and flags refused"

# Every criterion: the same outputs as NOSE, feeding --remove-layers FILE@RATIO.
for c in nose cosine bi entropy random first; do
  "$BIN" search --weights "$W" --criterion "$c" --ratios 0.34,0.5 --calib-images 128 --batch-size 64 --threads 1 \
    --quiet --out "s-$c.h5" --json "s-$c.json" >/dev/null
done
"$PY" - <<'PYEOF'
import json, h5py
layers = {}
for c in ["nose", "cosine", "bi", "entropy", "random", "first"]:
    j = json.load(open(f"s-{c}.json"))
    assert j["job"] == "search" and j["criterion"] == c, j
    sel = {s["ratio"]: s["layers"] for s in j["selections"]}
    assert len(sel[0.34]) == 2 and len(sel[0.5]) == 3, sel
    if c != "nose":
        assert set(sel[0.34]) <= set(sel[0.5]), (c, sel)  # a ranking: nested selections
        assert len(j["layer_scores"]) == 6, j["layer_scores"]
    with h5py.File(f"s-{c}.h5", "r") as f:
        assert f["/search/complete"][0] == 1 and f["/search/selection"].shape[0] == 2
        assert ("/search/layer_scores" in f) == (c != "nose")
    layers[c] = sel[0.5]
assert layers["first"] == [0, 1, 2], layers
print("ok   criteria:", layers)
PYEOF
"$BIN" train "${S[@]}" --weights "$W" --remove-layers s-cosine.json@0.5 --epochs 2 --decay-epochs 1 --warmup-epochs 1 \
  --steps-per-epoch 5 --out-dir from-cosine
"$PY" -c "import json; j = json.load(open('from-cosine/train.json')); l = json.load(open('s-cosine.json'))['selections'][1]['layers']; assert j['removed_layers'] == l, (j['removed_layers'], l)"
one_error "--criterion must be" "$BIN" search --weights "$W" --criterion loudest --out x.h5
one_error "--beam and --exhaustive are NOSE" "$BIN" search --weights "$W" --criterion cosine --beam 2 --out x.h5
echo "ok   a criterion's result feeds --remove-layers; unknown criteria refused"
echo "distill e2e: ok"
