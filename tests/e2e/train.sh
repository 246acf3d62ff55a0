#!/usr/bin/env bash
# vitslim train end to end on Debian's Fashion-MNIST: a run dilutes the chosen blocks to
# Removed and exports them; killed with -9 at a random step and resumed, or stopped by SIGTERM
# (Slurm preemption) and resumed, it ends bit-identical to an uninterrupted run; a non-finite
# loss stops with the step named and the last checkpoint kept; --resume on a finished run keeps its
# outputs; bad input is refused cleanly.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
CMP="$VITSLIM_SCRIPTS/compare_weights.py"
# Mixup, cutmix, drop-path and EMA on: resuming must reproduce every random draw and the EMA too.
T=(train --remove-layers 1,3 --epochs 4 --decay-epochs 2 --warmup-epochs 1 --steps-per-epoch 30 --batch-size 32
   --drop-path 0.1 --model-ema 0.99 --eval-images 1000 --entropy-images 64 --checkpoint-steps 5 --keep-last 2 --threads 1 --quiet)
passed=0
fail() { echo "FAIL: $*"; exit 1; }

"$BIN" "${T[@]}" --out-dir full
"$PY" - <<'PYEOF'
import json, h5py, numpy as np
from safetensors import safe_open
j = json.load(open("full/train.json"))
assert j["finished"] and j["removed_layers"] == [1, 3] and j["global_step"] == 120, j
assert j["best_epoch"] >= 1, "best must come from an epoch at lambda 0 (epochs 3-4 here)"
with safe_open("full/final.safetensors", "np") as f, safe_open("full/final-ema.safetensors", "np") as e:
    assert sorted(e.keys()) == sorted(f.keys())
    assert any(not np.array_equal(e.get_tensor(k), f.get_tensor(k)) for k in f.keys()), "EMA equals the weights"
    assert f.metadata()["vitslim.removed_layers"] == "1,3"
    assert not any(k.startswith(("blocks.1.attn", "blocks.3.attn")) for k in f.keys())
with h5py.File("full/train.h5", "r") as f:
    step, lam, ep = f["/train/step"][:], f["/train/step_lambda"][:], f["/train/epoch"][:]
    assert step.shape == (120, 8) and np.array_equal(step[:, 0], np.arange(1, 121))
    assert np.all(lam[:30, 1] == 1) and np.all(lam[30:60, 1] == 0.5) and np.all(lam[60:, [1, 3]] == 0)
    assert np.all(lam[:, [0, 2, 4, 5]] == 1)
    assert ep.shape == (4, 7) and np.all(np.isfinite(ep[:, 2]))
    assert np.isnan(f["/train/entropy_attn"][3, 1]) and np.isfinite(f["/train/entropy_mlp"][:]).all()
print("ok   run: blocks 1,3 removed at lambda 0, trace rows and lambda schedule as configured")
PYEOF
passed=$((passed + 1))
[[ $(ls full/checkpoints | grep -c safetensors) -eq 2 ]] || fail "--keep-last 2 kept $(ls full/checkpoints)"
passed=$((passed + 1))

# kill -9 as soon as the first checkpoint exists (somewhere in epoch 1), then resume.
"$BIN" "${T[@]}" --out-dir killed &
pid=$!
wait_for_file "$pid" "killed/checkpoints/step-*.safetensors" || fail "no checkpoint before the run ended"
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
test ! -e killed/final.safetensors || { echo "FAIL: the run finished before the kill"; exit 1; }
echo "killed after $(ls killed/checkpoints)"
"$BIN" "${T[@]}" --out-dir killed --resume
"$PY" "$CMP" full/final.safetensors killed/final.safetensors --traces full/train.h5 killed/train.h5
"$PY" "$CMP" full/final-ema.safetensors killed/final-ema.safetensors
passed=$((passed + 1))

# The newest checkpoint damaged (a disk fault after the fact): resume sets it aside, continues
# from the one before and still ends identical.
newest=$(ls killed/checkpoints/step-*.safetensors | tail -n 1)
head -c 1000 "$newest" >cut && mv cut "$newest"
"$BIN" "${T[@]}" --out-dir killed --resume 2>err.txt
grep -q "setting aside unreadable checkpoint" err.txt && test -e "$newest.unreadable" || { cat err.txt; fail "damaged checkpoint"; }
"$PY" "$CMP" full/final.safetensors killed/final.safetensors
passed=$((passed + 1))

# Resuming with another seed or selection is refused: it would train something else.
out=$("$BIN" "${T[@]}" --out-dir killed --resume --seed 7 2>&1) && fail "resume with another seed accepted"
grep -q "was trained with --seed 0, not 7" <<<"$out" || fail "seed: $out"
out=$("$BIN" "${T[@]/#1,3/1}" --out-dir killed --resume 2>&1) && fail "resume with another selection accepted"
grep -q "dilutes blocks 1,3, not --remove-layers 1" <<<"$out" || fail "selection: $out"
passed=$((passed + 1))

# SIGTERM: checkpoint at the next step boundary, exit 0; the resumed run ends identical.
"$BIN" "${T[@]}" --out-dir term &
pid=$!
wait_for_file "$pid" "term/checkpoints/step-*.safetensors" || fail "no checkpoint before the run ended"
kill -TERM "$pid"
wait "$pid"  # must be 0
"$PY" -c "import json; j = json.load(open('term/train.json')); assert not j['finished'] and j['stopped_by_signal'] == 15, j"
"$BIN" "${T[@]}" --out-dir term --resume
"$PY" "$CMP" full/final.safetensors term/final.safetensors
passed=$((passed + 1))

# --resume on a finished run keeps its outputs: nothing is trained, rewritten or traced again.
sums=$(cd term && md5sum final.safetensors final-ema.safetensors train.json train.h5 best.safetensors)
out=$("$BIN" "${T[@]}" --out-dir term --resume 2>&1) || fail "resume of a finished run: $out"
grep -q "this run finished earlier; its outputs are kept" <<<"$out" || fail "finished run: $out"
[[ "$(cd term && md5sum final.safetensors final-ema.safetensors train.json train.h5 best.safetensors)" == "$sums" ]] &&
  test ! -e term/train.h5.partial || fail "resume of a finished run changed its outputs"
passed=$((passed + 1))

# Reusing an out-dir without --resume is refused: nothing of the earlier run is touched.
before=$(ls full/checkpoints)
out=$("$BIN" "${T[@]}" --out-dir full 2>&1) && { echo "FAIL: reused out-dir accepted"; exit 1; }
grep -q "already holds checkpoints" <<<"$out" && [[ "$(ls full/checkpoints)" == "$before" ]] || fail "reuse: $out"
passed=$((passed + 1))

# Non-finite loss: stops with the step and rank named, keeps the last good checkpoint.
rc=0
"$BIN" train --lr 1e30 --epochs 2 --warmup-epochs 0 --steps-per-epoch 5 --checkpoint-steps 1 --eval-images 100 \
  --threads 1 --quiet --out-dir nan 2>err.txt || rc=$?
cat err.txt
[[ $rc -ne 0 ]] && grep -q "non-finite loss at epoch 0, global step [1-9] on rank 0" err.txt && \
  grep -q "last good checkpoint .*step-" err.txt && [[ $(grep -c . err.txt) -eq 1 ]] || fail "non-finite loss (rc $rc)"
test ! -e nan/final.safetensors || fail "non-finite run exported a model"
passed=$((passed + 1))

# File names are bytes: a --data-path and --out-dir that are not UTF-8 finish, and every file
# keeps them losslessly (JSON as \udcXX, as Python's surrogateescape; the INI dump as \xHH).
mkdir $'fm\xe9' && ln -s /usr/share/datasets/fashion-mnist/* $'fm\xe9'/
"$BIN" train --epochs 1 --warmup-epochs 0 --steps-per-epoch 2 --batch-size 8 --eval-images 32 --entropy-images 16 \
  --threads 1 --quiet --data-path $'fm\xe9' --out-dir $'run\xff' --remove-layers 1 --checkpoint-steps 1
"$PY" - <<'PYEOF'
import json, os, h5py
run = os.fsdecode(b"run\xff")
j = json.load(open(os.path.join(run, "train.json")))
assert j["finished"] and os.fsencode(j["checkpoint"]).startswith(b"run\xff/"), j["checkpoint"]
with h5py.File(os.path.join(run, "train.h5"), "r") as f:
    assert 'data-path = "fm\\xe9"' in f.attrs["config"], f.attrs["config"]
PYEOF
passed=$((passed + 1))

# Bad flags and files: one line naming the input, non-zero exit, nothing written.
bad() {
  local want="$1"; shift
  local rc=0
  "$BIN" train --threads 1 --quiet --out-dir bad "$@" 2>err.txt >/dev/null || rc=$?
  if [[ $rc -ne 0 ]] && grep -q -- "$want" err.txt && [[ $(grep -c . err.txt) -eq 1 ]] && [[ ! -e bad/train.h5 ]]; then
    passed=$((passed + 1))
  else
    echo "FAIL ($want): rc=$rc"; cat err.txt; exit 1
  fi
}
bad "block 9 does not exist" --remove-layers 9
bad "--warmup-epochs 5 must be shorter than --epochs 2" --epochs 2
bad "--accum-steps must be positive" --accum-steps 0
bad "--steps-per-epoch 5000 is more than the 1875 steps" --steps-per-epoch 5000 --batch-size 32
bad "--device cuda" --device cuda
bad "--mixup-prob must be in" --mixup-prob 2
bad "weights nowhere.pth" --weights nowhere.pth
[[ $passed -eq 17 ]] || fail "$passed of 17 checks ran"
echo "train e2e: $passed checks passed"
