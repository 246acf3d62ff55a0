#!/usr/bin/env bash
# vitslim export end to end, checked in real runtimes by scripts/check_onnx.py (onnx.checker,
# ONNX Runtime, OpenVINO; logits within 1e-4 of vitslim's on the --sample inputs, batch 1 too):
# the shipped full model, a compact one (no attention nodes in its removed blocks), a training
# checkpoint still diluting (refused without --lambda, exported at lambda 0.5 and at 0), the merged
# compact and folded models, token merging (ToMe), a safetensors export that loads back. The checker runs with an empty
# environment: the file needs nothing of vitslim. Refusals leave nothing behind.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
fail() { echo "FAIL: $*"; exit 1; }
CHECK=(env -i PATH=/usr/bin:/bin "$PY" "$VITSLIM_SCRIPTS/check_onnx.py")
SHIPPED="$VITSLIM_SCRIPTS/../pretrained/vit_fmnist.safetensors"
X=(export --threads 1 --quiet --sample-images 6)

"$BIN" "${X[@]}" --weights "$SHIPPED" --out full.onnx --sample full.st
"${CHECK[@]}" full.onnx full.st --json full.json
"$BIN" "${X[@]}" --weights "$SHIPPED" --remove-layers 1,3 --out compact.onnx --sample compact.st
"${CHECK[@]}" compact.onnx compact.st --removed 1,3
"$PY" - <<'EOF'
import onnx
m = onnx.load("compact.onnx")
meta = {p.key: p.value for p in m.metadata_props}
assert meta["vitslim.removed_layers"] == "1,3" and meta["vitslim.input_size"] == "1,28,28", meta
assert meta["vitslim.mean"] == "0.286" and meta["vitslim.std"] == "0.353", meta
assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
print("ok   compact: metadata and a symbolic batch")
EOF

# A training run diluting blocks 1 and 3 (lambda 1 -> 0 over 2 epochs); its mid-run checkpoint is
# at lambda 0.5.
"$BIN" train --model vit_test --data-set synthetic --remove-layers 1,3 --epochs 3 --decay-epochs 2 --warmup-epochs 1 \
  --steps-per-epoch 3 --batch-size 8 --calib-images 64 --eval-images 16 --entropy-images 0 --keep-last 5 \
  --threads 1 --quiet --out-dir run >/dev/null
middle=$(ls run/checkpoints/step-*.safetensors | sed -n 2p)
last=$(ls run/checkpoints/step-*.safetensors | tail -n 1)
rc=0
"$BIN" "${X[@]}" --checkpoint "$middle" --out diluting.onnx 2>err.txt || rc=$?
[[ $rc -ne 0 && ! -e diluting.onnx ]] && grep -q "block 1 at lambda 0.5, block 3 at lambda 0.5); pass --lambda" err.txt ||
  { cat err.txt; fail "a diluting checkpoint without --lambda must be refused"; }
echo "ok   diluting checkpoint without --lambda refused: $(grep error err.txt)"
"$BIN" "${X[@]}" --checkpoint "$middle" --lambda 0.5 --out diluting.onnx --sample diluting.st
"${CHECK[@]}" diluting.onnx diluting.st
"$PY" -c "
import onnx; meta = {p.key: p.value for p in onnx.load('diluting.onnx').metadata_props}
assert meta['vitslim.diluting'] == '1:0.5,3:0.5' and meta['vitslim.removed_layers'] == '', meta
print('ok   diluting at lambda 0.5:', meta['vitslim.diluting'])"
"$BIN" "${X[@]}" --checkpoint "$middle" --lambda 0 --out at_zero.onnx --sample at_zero.st
"${CHECK[@]}" at_zero.onnx at_zero.st --removed 1,3

# The merged compact and folded models of the finished run.
"$BIN" merge --checkpoint "$last" --out compact.safetensors --quiet >/dev/null
"$BIN" merge --checkpoint "$last" --out folded.safetensors --fold-residual --quiet >/dev/null
for m in compact folded; do
  "$BIN" "${X[@]}" --weights $m.safetensors --out merged_$m.onnx --sample merged_$m.st
  "${CHECK[@]}" merged_$m.onnx merged_$m.st --removed 1,3
done
"$PY" -c "
import onnx
n = lambda f: sum(x.op_type == 'Mul' and '.removed' in x.name for x in onnx.load(f).graph.node)
assert n('merged_compact.onnx') == 2 and n('merged_folded.onnx') == 0, (n('merged_compact.onnx'), n('merged_folded.onnx'))
print('ok   folded: removed blocks are plain MLP blocks (no x2 node)')"

# Token merging (ToMe) in the graph: full blocks merging by their keys with proportional attention,
# a compact model whose MLP-only blocks merge too, DeiT-Ti's decreasing schedule; and the merging
# recorded in a model file applies to its export.
"$BIN" "${X[@]}" --weights "$SHIPPED" --tome-r 4 --out tome.onnx --sample tome.st
"${CHECK[@]}" tome.onnx tome.st
"$BIN" "${X[@]}" --weights "$SHIPPED" --remove-layers 1,3 --tome-r 3 --tome-mlp-blocks --tome-prop-attn=false \
  --out tome_mlp.onnx --sample tome_mlp.st
"${CHECK[@]}" tome_mlp.onnx tome_mlp.st --removed 1,3
"$BIN" "${X[@]}" --model deit_tiny --tome-r 8 --tome-schedule decreasing --out tome_ti.onnx --sample tome_ti.st
"${CHECK[@]}" tome_ti.onnx tome_ti.st
"$BIN" "${X[@]}" --format safetensors --weights "$SHIPPED" --tome-r 4 --out tome.safetensors
"$BIN" "${X[@]}" --weights tome.safetensors --out tome_file.onnx --sample tome_file.st
"$PY" -c "
import onnx
from safetensors.numpy import load_file
import numpy as np
meta = {p.key: p.value for p in onnx.load('tome_file.onnx').metadata_props}
assert meta['vitslim.token_merging'].startswith('r=4,4,4,4,4,4'), meta
assert np.array_equal(load_file('tome_file.st')['logits'], load_file('tome.st')['logits'])
print('ok   ToMe recorded in a weights file is exported:', meta['vitslim.token_merging'])"

# safetensors export: loads back into vitslim with the same logits as ONNX.
"$BIN" "${X[@]}" --format safetensors --weights folded.safetensors --out again.safetensors
"$BIN" "${X[@]}" --weights again.safetensors --out again.onnx --sample again.st
"$PY" -c "
from safetensors.numpy import load_file; import numpy as np
a, b = load_file('again.st'), load_file('merged_folded.st')
assert np.array_equal(a['logits'], b['logits'])
print('ok   safetensors export: same logits')"

# Refusals: an existing --out without --force, --lambda without a checkpoint, a
# safetensors export of diluting blocks. Each leaves the existing file as it was.
before=$(sha256sum full.onnx)
bad() {
  local want="$1"; shift
  local rc=0
  "$BIN" export --quiet "$@" 2>err.txt >/dev/null || rc=$?
  [[ $rc -ne 0 ]] && grep -qF -- "$want" err.txt && [[ $(grep -c . err.txt) -eq 1 ]] || { cat err.txt; fail "$want"; }
  echo "ok   refused: $(cat err.txt)"
}
bad "--out full.onnx: exists; pass --force to overwrite it" --weights "$SHIPPED" --out full.onnx
[[ "$(sha256sum full.onnx)" == "$before" ]] || fail "full.onnx changed"
bad "--lambda needs --checkpoint" --weights "$SHIPPED" --lambda 0.5 --out l.onnx
bad "which only ONNX records" --checkpoint "$middle" --lambda 0.5 --format safetensors --out d.safetensors
[[ ! -e l.onnx && ! -e d.safetensors ]] || fail "a refused export left a file"
"$BIN" "${X[@]}" --weights "$SHIPPED" --remove-layers 2 --out full.onnx --force
[[ "$(sha256sum full.onnx)" != "$before" ]] || fail "--force did not overwrite"
echo "ok   --force overwrites"
