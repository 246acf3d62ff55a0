#!/usr/bin/env bash
# Image folders end to end, on real JPEG photos (scripts/make_image_folder.py, ImageNet layout):
# eval (1 rank == 2 ranks), training with the DeiT augmentation and the threaded loader (the same
# weights with 1 and 3 workers), every JPEG kind ImageNet holds, a folder of deliberately broken
# files under --bad-images skip and fail, a class index file, and clear errors for bad paths and
# short CIFAR files.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
CMP="$VITSLIM_SCRIPTS/compare_weights.py"
"$PY" "$VITSLIM_SCRIPTS/make_image_folder.py" imnet --train 40 --val 16 --classes 4 >/dev/null
# ImageNet's odd members: grey, CMYK, progressive JPEGs and a PNG named .JPEG.
"$PY" - <<'PYEOF'
from PIL import Image
src = Image.open("imnet/train/n00000001/n00000001_00001.JPEG").convert("RGB")
d = "imnet/train/n00000001/"
src.convert("L").save(d + "grey.JPEG", "JPEG", quality=90)
src.convert("CMYK").save(d + "cmyk.JPEG", "JPEG", quality=90)
src.save(d + "progressive.JPEG", "JPEG", quality=90, progressive=True)
src.save(d + "png_inside.JPEG", "PNG")
PYEOF
MB=(--model vit_test --img-size 32 --num-classes 4 --threads 1 --quiet)
M=("${MB[@]}" --data-set imagenet --data-path imnet)
passed=0

# 1. eval: the eval transform per image, sharded over ranks with the same totals.
"$BIN" eval "${M[@]}" --batch-size 8 --json e1.json
"$MPIEXEC" -np 2 "$BIN" eval "${M[@]}" --batch-size 8 --json e2.json
"$PY" - <<'PYEOF'
import json
a, b = json.load(open("e1.json")), json.load(open("e2.json"))
assert a["images"] == 16, a
for k in ("images", "top1_correct", "top5_correct"):
    assert a[k] == b[k], (k, a[k], b[k])
assert abs(a["loss"] - b["loss"]) < 1e-5, (a["loss"], b["loss"])
PYEOF
passed=$((passed + 1))

# 2. training with RandomResizedCrop + flip + RandAugment + erasing: the loader's batches do not
#    depend on the number of worker threads (per-sample random streams).
T=(train "${M[@]}" --epochs 2 --warmup-epochs 0 --batch-size 8 --eval-images 16 --entropy-images 16 --mixup 0 --cutmix 0 --lr 1e-3)
"$BIN" "${T[@]}" --workers 1 --out-dir w1 2>/dev/null
"$BIN" "${T[@]}" --workers 3 --prefetch 1 --out-dir w3 2>/dev/null
"$PY" "$CMP" w1/final.safetensors w3/final.safetensors --traces w1/train.h5 w3/train.h5 >/dev/null
"$BIN" "${T[@]}" --workers 0 --out-dir w0 2>/dev/null
"$PY" "$CMP" w1/final.safetensors w0/final.safetensors >/dev/null
passed=$((passed + 1))

# 3. A folder of deliberately broken files.
cp -r imnet broken
head -c 3000 imnet/train/n00000000/n00000000_00000.JPEG > broken/train/n00000000/truncated.JPEG
head -c 5000 /dev/urandom > broken/train/n00000002/noise.JPEG
: > broken/train/n00000003/empty.JPEG
echo "not an image" > broken/train/n00000003/notes.txt         # ignored (not an image name)
printf 'hello' > broken/val/n00000000/text_named.JPEG
mkdir broken/train/n00000004                                    # empty class folder
ln -s /nonexistent/folder broken/train/n00000005                # unreadable class folder
ln -s n00000007 broken/train/n00000006                          # two class folders linked in a loop
ln -s n00000006 broken/train/n00000007
# FF 00 after SOI: header bytes that lie about the frame; libjpeg and PIL skip them. Readable.
"$PY" -c "
import sys; b = open(sys.argv[1], 'rb').read(); open(sys.argv[2], 'wb').write(b[:2] + bytes([255, 0, 18, 52]) + b[2:])
" imnet/train/n00000001/n00000001_00001.JPEG broken/train/n00000001/lying_header.JPEG
B=(--model vit_test --img-size 32 --num-classes 8 --data-set imagenet --data-path broken --threads 1)
"$BIN" train "${B[@]}" --epochs 1 --warmup-epochs 0 --batch-size 8 --eval-images 16 --entropy-images 16 --workers 2 --out-dir wb --quiet 2>skip.txt
for f in truncated.JPEG noise.JPEG empty.JPEG text_named.JPEG "n00000004: empty class folder" \
         "n00000005: class folder missing or unreadable" "n00000006: class folder missing or unreadable" \
         "n00000007: class folder missing or unreadable" "ignored 1 entries"; do
  grep -q "$f" skip.txt || { echo "FAIL: no warning naming $f"; cat skip.txt; exit 1; }
done
grep -q "skipped 3 unreadable image(s)" skip.txt || { echo "FAIL: no count of skipped training images"; cat skip.txt; exit 1; }
test -s wb/final.safetensors
if "$BIN" eval "${B[@]}" --data-split train --quiet --bad-images fail 2>fail.txt; then
  echo "FAIL: --bad-images fail accepted a broken folder"; exit 1
fi
test "$(wc -l <fail.txt)" -eq 1 || { echo "FAIL: expected one error line"; cat fail.txt; exit 1; }
grep -q "^vitslim: error: .*broken/train/n00000004: empty class folder.*(--bad-images fail)" fail.txt || { cat fail.txt; exit 1; }
grep -q "lying_header" skip.txt && { echo "FAIL: the readable lying-header JPEG was skipped"; cat skip.txt; exit 1; }
rmdir broken/train/n00000004 && rm broken/train/n00000005 broken/train/n00000006 broken/train/n00000007
B4=(--model vit_test --img-size 32 --num-classes 4 --data-set imagenet --data-path broken --threads 1)
if "$BIN" eval "${B4[@]}" --quiet --bad-images fail 2>fail.txt; then echo "FAIL: text_named.JPEG accepted"; exit 1; fi
test "$(wc -l <fail.txt)" -eq 1 || { echo "FAIL: expected one error line"; cat fail.txt; exit 1; }
grep -q "text_named.JPEG: not a JPEG or PNG file (--bad-images fail)" fail.txt || { cat fail.txt; exit 1; }
passed=$((passed + 1))

# 4. A class index file fixes the label order (here: reversed), and names what it lists.
printf '# wnids in label order\nn00000003\nn00000002\nn00000001\nn00000000\n' > classes.txt
"$BIN" eval "${M[@]}" --class-index classes.txt --json ci.json
echo '{"0": ["n00000003", "a"], "1": ["n00000002", "b"], "2": ["n00000001", "c"], "3": ["n00000000", "d"]}' > classes.json
"$BIN" eval "${M[@]}" --class-index classes.json --json cj.json
cmp <("$PY" -c "import json; d=json.load(open('ci.json')); print(d['top1_correct'], d['loss'])") \
    <("$PY" -c "import json; d=json.load(open('cj.json')); print(d['top1_correct'], d['loss'])")
printf 'n00000003\nn00000003\n' > dup.txt
if "$BIN" eval "${M[@]}" --class-index dup.txt 2>err.txt; then exit 1; fi
grep -q "class n00000003 listed twice" err.txt
passed=$((passed + 1))

# 5. Bad paths and files: one clear line, non-zero exit.
mkdir empty_root
check_error() {  # expected message, then the vitslim arguments
  local want="$1"; shift
  if "$BIN" "$@" 2>err.txt; then echo "FAIL: accepted: $*"; exit 1; fi
  grep -q -e "$want" err.txt || { echo "FAIL: '$want' not in:"; cat err.txt; exit 1; }
}
check_error "does not exist" eval "${MB[@]}" --data-set imagenet --data-path /nonexistent
check_error "no train/ folder" train "${MB[@]}" --data-set imagenet --data-path empty_root --out-dir x
check_error "no class folders" eval "${MB[@]}" --data-set folder --data-path empty_root
check_error "--aa rand-x9: unknown section" train "${M[@]}" --aa rand-x9 --out-dir x
check_error "--bad-images must be skip or fail" eval "${M[@]}" --bad-images maybe
mkdir cifar  # 9 whole CIFAR-10 records (label byte + 3072 pixels) and a cut-off tenth
"$PY" -c "import os; open('cifar/test_batch.bin', 'wb').write(b''.join(bytes([i]) + os.urandom(3072) for i in range(10))[:30000])"
check_error "not a multiple of the 3073-byte record" eval --model vit_test --num-classes 10 --data-set cifar10 \
  --data-path cifar --bad-images fail
"$BIN" eval --model vit_test --num-classes 10 --data-set cifar10 --data-path cifar --eval-images 5 --quiet 2>warn.txt
grep -q "using its 9 whole records (--bad-images skip)" warn.txt
passed=$((passed + 1))
echo "image folders e2e: $passed passed, 0 failed"
