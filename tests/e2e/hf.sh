#!/usr/bin/env bash
# Hugging Face transformers folders out of vitslim (`export --format hf`), checked in transformers
# itself by scripts/check_hf_export.py against the export's --sample logits: unpruned ViT and DeiT
# (with teacher, from a sharded checkpoint), a ViTModel backbone, DINOv2 and CLIP (with and without
# projection, DINOv2's [CLS, mean of patches] classifier) round-trip to their stock class with every tensor bit-identical, DINOv2 with registers
# to its stock class; vitslim's compact models (removed attention, folded or not, a backbone, a
# DINOv2, token merging) load through the template with trust_remote_code. Refusals: a folder holding
# the input, a non-empty folder; a write that fails leaves no folder.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
fail() { echo "FAIL: $*"; exit 1; }
HF="$VITSLIM_TEST_DATA/hf"
CHECK=("$PY" "$VITSLIM_SCRIPTS/check_hf_export.py")
Q=(--quiet --threads 1)

# Stock classes: transformers -> vitslim -> transformers is the identity on the tensors.
for c in vit_classifier deit_teacher_sharded vit_backbone_bin dinov2 dinov2_classifier clip_vision clip_projection; do
  "$BIN" export --weights "$HF/$c" --format hf --out "$c" --sample "$c.st" "${Q[@]}" >/dev/null
  "${CHECK[@]}" "$c" "$c.st" --original "$HF/$c" --stock 2>/dev/null | grep check_hf_export || fail "$c"
done
# DINOv2 with registers: its stock class again (the class token carries its position in vitslim, so
# the tensors differ there; the outputs do not).
"$BIN" export --weights "$HF/dinov2_registers" --format hf --out dinov2_registers --sample dinov2_registers.st "${Q[@]}" \
  >/dev/null
"${CHECK[@]}" dinov2_registers dinov2_registers.st --stock 2>/dev/null | grep check_hf_export || fail "dinov2_registers"
# Through the template: compact models, folded or not, and a compact DINOv2.
"$BIN" export --weights "$HF/dinov2" --remove-layers 2 --format hf --out dinov2_compact --sample dinov2_compact.st \
  "${Q[@]}" >/dev/null
"${CHECK[@]}" dinov2_compact dinov2_compact.st --remote 2>/dev/null | grep check_hf_export || fail "dinov2_compact"
"$BIN" export --weights "$HF/dinov2_classifier" --remove-layers 0 --format hf --out dinov2_classifier_compact \
  --sample dinov2_classifier_compact.st "${Q[@]}" >/dev/null
"${CHECK[@]}" dinov2_classifier_compact dinov2_classifier_compact.st --remote 2>/dev/null | grep check_hf_export ||
  fail "dinov2_classifier_compact"
"$BIN" export --weights "$HF/vit_classifier" --remove-layers 1,3 --format hf --out compact --sample compact.st \
  "${Q[@]}" >/dev/null
"${CHECK[@]}" compact compact.st --remote 2>/dev/null | grep check_hf_export || fail "compact"
# vitslim reads its own template folder back: the same model, the same sample logits.
"$BIN" export --weights compact --out back.safetensors --format safetensors --sample back.st "${Q[@]}" >/dev/null
"$PY" -c "
import sys, torch; from safetensors.torch import load_file
a, b = load_file('compact.st'), load_file('back.st')
sys.exit(0 if torch.equal(a['logits'], b['logits']) else 1)" || fail "vitslim does not read its template folder back"
"$BIN" export --model vit_test --num-classes 0 --remove-layers 0 --format hf --out backbone --sample backbone.st \
  "${Q[@]}" >/dev/null
"${CHECK[@]}" backbone backbone.st --remote 2>/dev/null | grep check_hf_export || fail "backbone"
# Folded: a dilution run merged with --fold-residual.
"$BIN" train --model vit_test --data-set synthetic --calib-images 16 --batch-size 8 --remove-layers 1 --epochs 2 \
  --decay-epochs 1 --warmup-epochs 0 --steps-per-epoch 2 --entropy-images 0 --out-dir run "${Q[@]}" >/dev/null
last=$(ls run/checkpoints/step-*.safetensors | tail -n 1)
"$BIN" merge --checkpoint "$last" --out folded.safetensors --fold-residual --quiet >/dev/null
"$BIN" export --weights folded.safetensors --format hf --out folded --sample folded.st "${Q[@]}" >/dev/null
"${CHECK[@]}" folded folded.st --remote 2>/dev/null | grep check_hf_export || fail "folded"
# Token merging as vitslim runs it: class token pooling, proportional attention, compact with MLP-only
# blocks merging, average pooling weighed by size, and registers protected from merging.
"$BIN" export --weights "$HF/vit_classifier" --tome-r 2 --format hf --out tome --sample tome.st "${Q[@]}" >/dev/null
"$BIN" export --weights "$HF/vit_classifier" --remove-layers 1 --tome-r 3 --tome-mlp-blocks --tome-prop-attn=false \
  --format hf --out tome_mlp --sample tome_mlp.st "${Q[@]}" >/dev/null
"$BIN" export --model vit_test --global-pool avg --tome-r 2 --format hf --out tome_avg --sample tome_avg.st "${Q[@]}" \
  >/dev/null
"$BIN" export --weights "$HF/dinov2_registers" --tome-r 2 --format hf --out tome_reg --sample tome_reg.st "${Q[@]}" \
  >/dev/null
for c in tome tome_mlp tome_avg tome_reg; do
  "${CHECK[@]}" "$c" "$c.st" --remote 2>/dev/null | grep check_hf_export || fail "$c"
done
grep -q '"residual_folded": true' folded/config.json || fail "folded config"

# The [class token, mean of patches] head (token_avg) in ONNX Runtime and OpenVINO too, and plain
# average pooling (whose ReduceMean took its axes as an input, which opset 17 does not have).
"$BIN" export --weights "$HF/dinov2_classifier" --remove-layers 1 --out token_avg.onnx --sample token_avg.st "${Q[@]}" \
  >/dev/null
env -i PATH=/usr/bin:/bin "$PY" "$VITSLIM_SCRIPTS/check_onnx.py" token_avg.onnx token_avg.st --removed 1 >/dev/null ||
  fail "token_avg in ONNX"
"$BIN" export --model vit_test --global-pool avg --out avg.onnx --sample avg.st "${Q[@]}" >/dev/null
env -i PATH=/usr/bin:/bin "$PY" "$VITSLIM_SCRIPTS/check_onnx.py" avg.onnx avg.st >/dev/null || fail "avg pooling in ONNX"

# Refusals: one line, nothing written.
one_error() {  # expected substring, command...
  local want="$1"; shift
  local rc=0; "$@" >/dev/null 2>err.txt || rc=$?
  [[ $rc -ne 0 ]] || fail "exit 0: $*"
  [[ $(grep -vc '^\[vitslim\]' err.txt) -eq 1 ]] && grep -qF -- "$want" err.txt || { cat err.txt; fail "message: $want"; }
}
cp -r "$HF/vit_classifier" own
one_error "the output would destroy an input" "$BIN" export --weights own --format hf --out own --force "${Q[@]}"
one_error "holds the input own/model.safetensors" "$BIN" export --weights own/model.safetensors --format hf --out own \
  --force "${Q[@]}"
"${CHECK[@]}" own vit_classifier.st --original "$HF/vit_classifier" >/dev/null 2>&1 || fail "the input folder changed"
first=$(ls run/checkpoints/step-*.safetensors | head -n 1)  # block 1 still diluting
one_error "would be diluting, which only ONNX records" "$BIN" export --checkpoint "$first" --lambda 0.5 --format hf \
  --out diluting "${Q[@]}"
one_error "lies inside --out" "$BIN" export --model vit_test --format hf --out inside --sample inside/s.safetensors "${Q[@]}"
mkdir stale && touch stale/pytorch_model.bin  # --force replaces an export's files, never other weights
one_error "holds pytorch_model.bin, which an export does not write" "$BIN" export --model vit_test --format hf \
  --out stale --force "${Q[@]}"
mkdir full && touch full/x
one_error "a folder that is not empty; pass --force" "$BIN" export --model vit_test --format hf --out full "${Q[@]}"
one_error "write failed: File too large" bash -c 'ulimit -f 8; exec "$0" "$@"' "$BIN" export --model vit_test \
  --format hf --out big "${Q[@]}"
[[ ! -e big ]] || fail "a failed export left its folder"
echo "hf e2e: ok"
