#!/usr/bin/env bash
# vitslim merge end to end: a Fashion-MNIST training run diluted to lambda 0 is merged into the
# compact model (equal to the run's own final export under vitslim eval), folded (same accuracy,
# plain MLP blocks), loaded and evaluated in PyTorch with the same results; a checkpoint from
# before lambda 0, a missing file and a non-checkpoint are refused with nothing written.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
fail() { echo "FAIL: $*"; exit 1; }
EVAL=(eval --eval-images 500 --threads 1 --quiet)
"$BIN" train --remove-layers 1,3 --epochs 3 --decay-epochs 2 --warmup-epochs 1 --steps-per-epoch 15 \
  --eval-images 200 --entropy-images 0 --keep-last 5 --threads 1 --quiet --out-dir run
last=$(ls run/checkpoints/step-*.safetensors | tail -n 1)
middle=$(ls run/checkpoints/step-*.safetensors | sed -n 2p)  # end of epoch 1: lambda 0.5

"$BIN" merge --checkpoint "$last" --out compact.safetensors --json merge.json --quiet
"$PY" -c "import json; j = json.load(open('merge.json')); assert j['removed_layers'] == [1, 3] and j['max_abs_diff'] <= 1e-5, j"
"$BIN" "${EVAL[@]}" --weights compact.safetensors --json compact.json
"$BIN" "${EVAL[@]}" --weights run/final.safetensors --json final.json
"$PY" -c "
import json
a, b = json.load(open('compact.json')), json.load(open('final.json'))
assert a['top1_correct'] == b['top1_correct'] and abs(a['loss'] - b['loss']) < 1e-7, (a, b)
print('ok   merged = the run final export:', a['top1_correct'], a['loss'])"
"$PY" "$VITSLIM_SCRIPTS/eval_export.py" compact.safetensors --vitslim-json compact.json --images 500

"$BIN" merge --checkpoint "$last" --out folded.safetensors --fold-residual --json fold.json --quiet
"$BIN" "${EVAL[@]}" --weights folded.safetensors --json folded.json
"$PY" -c "
import json
a, b, f = json.load(open('folded.json')), json.load(open('compact.json')), json.load(open('fold.json'))
assert f['folded'] and a['top1_correct'] == b['top1_correct'] and abs(a['loss'] - b['loss']) < 1e-5, (a, b)
print('ok   folded: same accuracy, loss', a['loss'], 'vs', b['loss'])"
"$PY" "$VITSLIM_SCRIPTS/eval_export.py" folded.safetensors --vitslim-json folded.json --images 500

# A checkpoint whose blocks are diluting at exactly lambda 0 (attention weights still inside, as
# other tools may write it): merge drops them after checking x -> 2x against (2 - 0) x + 0 Attn.
"$PY" - "$middle" <<'PYEOF'
import json, sys
from safetensors.torch import load_file, save_file
from safetensors import safe_open
with safe_open(sys.argv[1], "pt") as f:
    meta = f.metadata()
state = json.loads(meta["vitslim.train_state"])
assert state["modes"][1] == "diluting" and state["lambdas"][1] == 0.5, state
state["lambdas"] = [0.0 if m == "diluting" else l for m, l in zip(state["modes"], state["lambdas"])]
meta["vitslim.train_state"] = json.dumps(state)
save_file(load_file(sys.argv[1]), "at_zero.safetensors", metadata=meta)
PYEOF
"$BIN" merge --checkpoint at_zero.safetensors --out zero.safetensors --json zero.json --quiet
"$PY" -c "
import json; j = json.load(open('zero.json'))
assert j['merged_now'] == [1, 3] and j['params_after'] < j['params_before'] and j['max_abs_diff'] <= 1e-5, j
print('ok   lambda-0 checkpoint merged:', j['params_before'], '->', j['params_after'], 'parameters')"

# Refusals: one line naming the input, non-zero exit, no output file.
bad() {
  local want="$1"; shift
  local rc=0
  "$BIN" merge --quiet --out bad.safetensors "$@" 2>err.txt >/dev/null || rc=$?
  [[ $rc -ne 0 ]] && grep -q -- "$want" err.txt && [[ $(grep -c . err.txt) -eq 1 ]] && [[ ! -e bad.safetensors ]] ||
    { cat err.txt; fail "$want (rc $rc)"; }
}
bad "is still diluting at lambda 0.5" --checkpoint "$middle"
bad "nowhere.safetensors" --checkpoint nowhere.safetensors
bad "no vitslim.train_state metadata" --checkpoint compact.safetensors
bad "--checkpoint is required"
echo "merge e2e: ok"
