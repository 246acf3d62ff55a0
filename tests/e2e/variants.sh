#!/usr/bin/env bash
# Every ViT-family preset (scaled down: depth 4, width 48, 2 heads, a 3x3 patch grid) through the
# CLI: entropy and search run on it (the DINOv2 backbones, which have no head, with the pooled-feature
# estimator too); its safetensors export loads into timm.create_model(name) with strict=True and
# gives vitslim's logits; its ONNX export passes scripts/check_onnx.py in ONNX Runtime; a removed
# block's export carries no ls1; an EVA-style weights file is refused by key.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
fail() { echo "FAIL: $*"; exit 1; }
T=(--threads 1 --quiet)
D=(--data-set synthetic --calib-images 32 --batch-size 16)
CHECK=(env -i PATH=/usr/bin:/bin "$PY" "$VITSLIM_SCRIPTS/check_onnx.py")

declare -A TIMM=(
  [deit_base_distilled]=deit_base_distilled_patch16_224
  [deit3_small]=deit3_small_patch16_224
  [deit3_base]=deit3_base_patch16_224
  [vit_base_augreg]=vit_base_patch16_224
  [vit_small_dinov2]=vit_small_patch14_dinov2
  [vit_small_dinov2_reg]=vit_small_patch14_reg4_dinov2
  [vit_base_clip]=vit_base_patch16_clip_quickgelu_224
)
for preset in "${!TIMM[@]}"; do
  img=48 classes=10
  if [[ $preset == vit_small_dinov2* ]]; then img=42 classes=0; fi
  M=(--model "$preset" --img-size "$img" --depth 4 --embed-dim 48 --num-heads 2 --num-classes "$classes")
  "$BIN" entropy "${M[@]}" "${D[@]}" --out "$preset-ent.h5" --json "$preset-ent.json" "${T[@]}"
  "$BIN" search "${M[@]}" "${D[@]}" --ratios 0.5 --out "$preset-s.h5" --json "$preset-s.json" "${T[@]}"
  if ((classes == 0)); then
    "$BIN" search "${M[@]}" "${D[@]}" --ratios 0.5 --estimator pooled --out "$preset-p.h5" "${T[@]}"
  fi
  "$BIN" export --format safetensors "${M[@]}" --out "$preset.safetensors" --sample "$preset-st.safetensors" "${T[@]}"
  "$BIN" export --format onnx "${M[@]}" --out "$preset.onnx" --sample "$preset-onnx.safetensors" "${T[@]}"
  "${CHECK[@]}" "$preset.onnx" "$preset-onnx.safetensors" --runtimes onnxruntime > /dev/null ||
    fail "$preset: ONNX check"
  "$PY" - "$preset" "${TIMM[$preset]}" "$img" "$classes" <<'PYEOF'
import json, sys
import torch
from safetensors.torch import load_file
sys.path.insert(0, __import__("os").environ["VITSLIM_SCRIPTS"])
from timm_compat import timm
preset, name, img, classes = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ent, srch = json.load(open(f"{preset}-ent.json")), json.load(open(f"{preset}-s.json"))
assert len(ent["blocks"]) == 4, ent["blocks"]
assert len(srch["selections"][0]["layers"]) == 2, srch["selections"]
model = timm.create_model(name, pretrained=False, depth=4, embed_dim=48, num_heads=2, img_size=img,
                          num_classes=classes).eval()
model.load_state_dict(load_file(f"{preset}.safetensors"), strict=True)
sample = load_file(f"{preset}-st.safetensors")
with torch.no_grad():
    diff = (model(sample["images"]) - sample["logits"]).abs().max().item()
assert diff < 1e-4, f"{preset}: timm's logits differ by {diff}"
print(f"ok   {preset}: entropy, search, timm {name} strict load (|diff| {diff:.1e}), ONNX")
PYEOF
done

# The pooled-feature estimator on a model with a head, and a removed block's LayerScale goes with it.
M=(--model deit3_small --img-size 48 --depth 4 --embed-dim 48 --num-heads 2 --num-classes 10)
"$BIN" search "${M[@]}" "${D[@]}" --ratios 0.5 --estimator pooled --out pooled.h5 "${T[@]}"
"$BIN" export --format safetensors "${M[@]}" --remove-layers 1 --out removed.safetensors "${T[@]}"
"$PY" - <<'PYEOF'
from safetensors import safe_open
keys = set(safe_open("removed.safetensors", "pt").keys())
assert "blocks.0.ls1.gamma" in keys and "blocks.1.ls2.gamma" in keys, sorted(keys)
assert not any(k.startswith(("blocks.1.ls1", "blocks.1.attn", "blocks.1.norm1")) for k in keys), sorted(keys)
print("ok   a removed block keeps no ls1, attn or norm1")
PYEOF

# Dilution learning on a LayerScale model and a distilled one: train while block 1 dilutes, merge
# into the compact model (merge checks it reproduces the checkpoint's logits), fold its residual
# factors into gamma / the embedding, and evaluate both alike.
for preset in deit3_small deit_base_distilled vit_base_clip; do
  M=(--model "$preset" --img-size 48 --depth 4 --embed-dim 48 --num-heads 2 --num-classes 10)
  "$BIN" train "${M[@]}" --data-set synthetic --calib-images 64 --batch-size 16 --remove-layers 1 --epochs 2 \
    --warmup-epochs 0 --decay-epochs 1 --steps-per-epoch 4 --eval-images 32 --entropy-images 0 --out-dir "run-$preset" \
    "${T[@]}"
  last=$(ls "run-$preset"/checkpoints/step-*.safetensors | tail -n 1)
  "$BIN" merge --checkpoint "$last" --out "$preset-compact.safetensors" --json "$preset-merge.json" --quiet
  "$BIN" merge --checkpoint "$last" --out "$preset-folded.safetensors" --fold-residual --json "$preset-fold.json" --quiet
  for f in compact folded; do
    "$BIN" eval --weights "$preset-$f.safetensors" --data-set synthetic --calib-images 64 --eval-images 64 \
      --json "$preset-$f-eval.json" "${T[@]}"
  done
  "$PY" - "$preset" <<'PYEOF'
import json, sys
p = sys.argv[1]
m, f = json.load(open(f"{p}-merge.json")), json.load(open(f"{p}-fold.json"))
assert m["removed_layers"] == [1] and m["max_abs_diff"] <= 1e-5 and f["folded"] and f["fold_max_abs_diff"] <= 1e-4, (m, f)
a, b = json.load(open(f"{p}-compact-eval.json")), json.load(open(f"{p}-folded-eval.json"))
assert a["top1"] == b["top1"] and abs(a["loss"] - b["loss"]) < 1e-4, (a, b)
print(f"ok   {p}: trained while diluting, merged (|diff| {m['max_abs_diff']:.1e}), folded, same eval")
PYEOF
done

# Exports for photos carry the normalisation the preset's pretrained weights expect (CLIP's here).
"$BIN" export --model vit_base_clip --img-size 48 --depth 2 --embed-dim 48 --num-heads 2 --data-set imagenet \
  --out clip-norm.onnx "${T[@]}"
"$PY" - <<'PYEOF'
import onnx
meta = {p.key: p.value for p in onnx.load("clip-norm.onnx", load_external_data=False).metadata_props}
assert meta["vitslim.mean"].startswith("0.4814") and meta["vitslim.std"].startswith("0.2686"), meta
print("ok   CLIP export metadata: mean", meta["vitslim.mean"], "std", meta["vitslim.std"])
PYEOF

# An EVA-style file (rotary embeddings, SwiGLU) is refused by key, and nothing is written.
"$PY" - <<'PYEOF'
import torch
from safetensors.torch import load_file, save_file
state = load_file("deit3_small.safetensors")
state["rope.freqs"] = torch.zeros(4)
state["blocks.0.mlp.fc1_g.weight"] = torch.zeros(4, 4)
save_file(state, "eva_like.safetensors")
PYEOF
if "$BIN" export --format onnx --weights eva_like.safetensors --num-heads 2 --out eva.onnx "${T[@]}" 2> eva.err; then
  fail "an EVA-style file was exported"
fi
grep -q "unknown keys \[.*rope.freqs" eva.err || fail "no key named: $(cat eva.err)"
grep -q "DINOv2" eva.err || fail "no supported families listed: $(cat eva.err)"
[[ $(wc -l < eva.err) -eq 1 ]] || fail "more than one error line: $(cat eva.err)"
[[ ! -e eva.onnx ]] || fail "eva.onnx written"
echo "ok   EVA-style weights refused: $(cat eva.err)"
