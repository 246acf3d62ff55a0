#!/usr/bin/env bash
# `vitslim entropy` against a PyTorch reference (scripts/entropy_reference.py): the same weights
# (timm-format safetensors), all 10,000 Fashion-MNIST test images, the entropy of every attention
# and MLP branch and of the logits over all rows at once (docs/method.md section 2).
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
REF="$VITSLIM_SCRIPTS/entropy_reference.py"
FM=/usr/share/datasets/fashion-mnist
"$PY" "$REF" --make-weights fm.safetensors
"$BIN" entropy --weights fm.safetensors --data-split test --calib-images 10000 --batch-size 250 --quiet \
  --out fm.h5 --json fm.json >/dev/null
"$PY" "$REF" fm.safetensors fm.json --images "$FM/t10k-images-idx3-ubyte.gz"
echo "entropy golden: 1 passed, 0 failed"
