#!/usr/bin/env bash
# vitslim convert: a torch.save checkpoint becomes a timm-named .safetensors file that Python
# (safetensors + timm) loads, with removed layers in its metadata and the same logits.
set -euo pipefail
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$VITSLIM_BIN" convert --weights "$VITSLIM_TEST_DATA/golden_wrapped.pth" --model vit_test --remove-layers 0,2 \
  --out "$WORK/compact.safetensors"
"$VITSLIM_PYTHON" "$VITSLIM_SCRIPTS/check_export.py" "$WORK/compact.safetensors" \
  --expected "$VITSLIM_FIXTURES/golden_vit_test_expected.safetensors" --case removed
echo "convert e2e: 1 passed, 0 failed"
