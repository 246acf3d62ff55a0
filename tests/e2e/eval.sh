#!/usr/bin/env bash
# vitslim eval on Debian's Fashion-MNIST test split: counts are sane, a compact export (attention
# removed) evaluates, 2 ranks give exactly the 1-rank totals, and a class mismatch is refused.
# --bf16 on the CPU: the shipped converged vit_fmnist scores within 0.1 points of float32 on the
# whole test split, and bench and train run with it.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
E=(eval --eval-images 2000 --batch-size 100 --threads 1 --quiet)
"$BIN" "${E[@]}" --json one.json
"$MPIEXEC" -np 2 "$BIN" "${E[@]}" --json two.json
# A pruned model: the layers a search selected for ratio 0.3 are removed, then it is evaluated.
"$BIN" search --calib-images 64 --ratios 0.3 --threads 1 --quiet --out s.h5 --json s.json >/dev/null
"$BIN" eval --remove-layers s.json@0.3 --eval-images 500 --threads 1 --quiet --json pruned.json
"$PY" - <<'PYEOF'
import json
one, two, pruned = (json.load(open(f)) for f in ("one.json", "two.json", "pruned.json"))
assert one["images"] == 2000 and two["world_size"] == 2
for key in ("images", "top1_correct", "top5_correct"):
    assert one[key] == two[key], (key, one[key], two[key])
assert 0 <= one["top1_correct"] <= one["top5_correct"] <= one["images"]
assert len(pruned["model"]["removed_layers"]) == 2 and pruned["images"] == 500
print(f"eval: 1 rank == 2 ranks: top-1 {one['top1']:.2f}%, top-5 {one['top5']:.2f}% (random weights); "
      f"pruned model {pruned['model']['removed_layers']} evaluates")
PYEOF
if "$BIN" eval --model deit_tiny --eval-images 10 --out x 2>err.txt; then echo "FAIL: unknown flag accepted"; exit 1; fi
if "$BIN" eval --model vit_test --data-set cifar10 --data-path /nonexistent 2>err.txt; then exit 1; fi
grep -q "does not exist" err.txt
if "$BIN" eval --model vit_test --img-size 28 --patch-size 4 --in-chans 1 --num-classes 5 --eval-images 10 2>err.txt; then
  echo "FAIL: class mismatch accepted"; exit 1
fi
grep -q "the model has 5 classes but fashion-mnist test has 10" err.txt

SHIPPED="$VITSLIM_SCRIPTS/../pretrained/vit_fmnist.safetensors"
if [[ -f "$SHIPPED" ]]; then
  "$BIN" eval --weights "$SHIPPED" --batch-size 500 --threads 1 --quiet --json fp32.json >/dev/null
  "$BIN" eval --weights "$SHIPPED" --batch-size 500 --threads 1 --quiet --bf16 --json bf16.json >/dev/null
  "$PY" - <<'PYEOF'
import json
fp32, bf16 = (json.load(open(f)) for f in ("fp32.json", "bf16.json"))
assert fp32["images"] == bf16["images"] == 10000 and bf16["bf16"] and not fp32["bf16"]
assert abs(fp32["top1"] - bf16["top1"]) <= 0.1, (fp32["top1"], bf16["top1"])
print(f"eval --bf16 on the CPU: top-1 {bf16['top1']:.2f}% against {fp32['top1']:.2f}% in float32")
PYEOF
else
  echo "eval --bf16: no shipped pretrained/vit_fmnist.safetensors, accuracy check skipped"
fi
"$BIN" bench --model vit_test --bf16 --iters 1 --warmup 0 --batch-size 4 --threads 1 --json bench.json >/dev/null
"$BIN" train --model vit_fmnist --bf16 --epochs 1 --warmup-epochs 0 --steps-per-epoch 2 \
  --batch-size 8 --eval-images 16 --entropy-images 0 --threads 1 --quiet --out-dir bf16-run >/dev/null
"$PY" -c "import json; assert json.load(open('bench.json'))['bf16'] and json.load(open('bf16-run/train.json'))['finished']"
echo "eval e2e: 5 passed, 0 failed"
