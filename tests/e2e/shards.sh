#!/usr/bin/env bash
# WebDataset shards and the dataset index end to end, on real JPEG photos
# (scripts/make_image_folder.py): make-shards writes shards the reference `webdataset` package
# reads back with the same keys, labels and bytes; vitslim reads webdataset.ShardWriter's shards;
# eval on a folder and on its shards gives identical results (1 and 2 ranks); training on shards
# gives the same weights with 1 and 3 loader threads and resumes exactly after kill -9; the index
# file is reused, refused when stale and skipped with --index none; bad shards (a pattern matching
# nothing, an empty shard, a sample without a label, a label out of range, a truncated tar) are
# skipped with counts or refused with one error line.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
[[ -n "${SHARDS_TRACE:-}" ]] && set -x
CMP="$VITSLIM_SCRIPTS/compare_weights.py"
WDS="$VITSLIM_SCRIPTS/wds_interop.py"
"$PY" "$VITSLIM_SCRIPTS/make_image_folder.py" imnet --train 40 --val 16 --classes 4 >/dev/null
MB=(--model vit_test --img-size 32 --num-classes 4 --threads 1 --quiet)
passed=0
fail() { echo "FAIL: $*"; exit 1; }
check_error() {  # expected message, then the vitslim arguments: one line, non-zero exit
  local want="$1"; shift
  if "$BIN" "$@" 2>err.txt; then fail "accepted: $*"; fi
  test "$(wc -l <err.txt)" -eq 1 || { cat err.txt; fail "expected one error line: $*"; }
  grep -q -e "$want" err.txt || { cat err.txt; fail "'$want' not in the error"; }
}
eval_summary() { "$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); print(d['images'], d['top1_correct'], d['top5_correct'], '%.6f' % d['loss'])" "$1"; }

# 1. make-shards: train shuffled across 4 shards, val in folder order; webdataset reads them back.
"$BIN" make-shards --data-set imagenet --data-path imnet --out 'shards/train-%06d.tar' --shard-size 12 --quiet >ms.txt
grep -q "make-shards: 40 samples in 4 shard(s)" ms.txt || { cat ms.txt; fail "make-shards train"; }
"$BIN" make-shards --data-set imagenet --data-path imnet --data-split test --out 'shards/val-%06d.tar' --shard-size 4 --quiet >/dev/null
"$PY" "$WDS" check --shards 'shards/train-{000000..000003}.tar' --folder imnet/train --any-order
"$PY" "$WDS" check --shards 'shards/val-{000000..000003}.tar' --folder imnet/val
# Byte for byte the same shards from a second run (seeded order, fixed tar headers).
"$BIN" make-shards --data-set imagenet --data-path imnet --out 'again/train-%06d.tar' --shard-size 12 --quiet >/dev/null
for k in 0 1 2 3; do cmp "shards/train-00000$k.tar" "again/train-00000$k.tar"; done
# Existing shards are not replaced without --force; --force replaces them.
check_error "exists; pass --force to overwrite it" make-shards --data-set imagenet --data-path imnet --out 'shards/train-%06d.tar' --shard-size 12 --quiet
"$BIN" make-shards --data-set imagenet --data-path imnet --out 'again/train-%06d.tar' --shard-size 12 --force --quiet >/dev/null
check_error "needs exactly one %d" make-shards --data-set imagenet --data-path imnet --out 'x/train.tar' --quiet
passed=$((passed + 1))

# 1b. Issue 33 items 1 and 2: a pattern that maps two shards to one file (c/%d/../same.tar), and
# shards inside the input folder even with --force, are refused before anything is written.
before=$(find imnet | sort | md5sum)
check_error "shards 0 and 1 are the same file" make-shards --data-set imagenet --data-path imnet \
  --out 'c/%d/../same.tar' --shard-size 12 --quiet
[[ ! -e c ]] || fail "a refused make-shards created c/"
check_error "lies inside --data-path .*, the images it reads" make-shards --data-set imagenet --data-path imnet \
  --out 'imnet/train/n00000000/img%d.JPEG' --shard-size 1 --force --quiet
[[ $(find imnet | sort | md5sum) == "$before" ]] || fail "make-shards changed its input folder"
echo "ok   make-shards: colliding shard names and shards over its inputs are refused, nothing written"
# Item 8: a bad image late in the folder under --bad-images fail leaves no shard behind, not the
# shards written before it.
cp -r imnet imbad
last_class=$(find imbad -mindepth 2 -maxdepth 2 -type d -path '*val*' | sort | tail -n 1)
echo "not a JPEG" >"$last_class/zzz_broken.JPEG"
check_error "zzz_broken.JPEG.*(--bad-images fail)" make-shards --data-set imagenet --data-path imbad --data-split test \
  --out 'badshards/val-%06d.tar' --shard-size 4 --bad-images fail --quiet
[[ -z "$(find badshards -type f 2>/dev/null)" ]] || { find badshards; fail "a failed make-shards left files"; }
echo "ok   make-shards: a failure on the last image leaves no shard (all are renamed into place at the end)"

# 2. Eval on the folder and on its shards: the same images in the same order, identical results,
#    with 1 and 2 ranks; and shards written by webdataset.ShardWriter (.cls and .json labels).
"$BIN" eval "${MB[@]}" --data-set imagenet --data-path imnet --batch-size 8 --json folder.json
"$BIN" eval "${MB[@]}" --data-set wds --data-path 'shards/val-{000000..000003}.tar' --data-split test --batch-size 8 --json wds.json
"$MPIEXEC" -np 2 "$BIN" eval "${MB[@]}" --data-set wds --data-path shards --data-split test --batch-size 8 --json wds2.json
"$PY" "$WDS" write --folder imnet/val --out 'pyshards/val-%06d.tar' --maxcount 5
printf 'pyshards/val-000000.tar\n# comments and blank lines are skipped\n\npyshards/val-000001.tar\npyshards/val-000002.tar\npyshards/val-000003.tar\n' > list.txt
"$BIN" eval "${MB[@]}" --data-set wds --data-path list.txt --data-split test --batch-size 8 --json py.json
want=$(eval_summary folder.json)
[[ "$want" == 16\ * ]] || fail "folder eval: $want"
for j in wds.json wds2.json py.json; do [[ "$(eval_summary $j)" == "$want" ]] || fail "$j: $(eval_summary $j) != folder $want"; done
passed=$((passed + 1))

# 3. Training on a folder of shards (train-*.tar, val-*.tar): the same weights with 1 and 3
#    loader threads; kill -9 after the first checkpoint and --resume ends identical.
T=(train "${MB[@]}" --data-set wds --data-path shards --epochs 3 --warmup-epochs 0 --batch-size 8 --eval-images 16
   --entropy-images 16 --mixup 0 --cutmix 0 --lr 1e-3 --checkpoint-steps 2)
"$BIN" "${T[@]}" --shuffle-buffer 6 --workers 1 --out-dir w1 2>/dev/null
"$BIN" "${T[@]}" --shuffle-buffer 6 --workers 3 --prefetch 1 --out-dir w3 2>/dev/null
"$PY" "$CMP" w1/final.safetensors w3/final.safetensors --traces w1/train.h5 w3/train.h5 >/dev/null
"$BIN" "${T[@]}" --shuffle-buffer 6 --workers 1 --out-dir killed 2>/dev/null &
pid=$!
wait_for_file "$pid" "killed/checkpoints/step-*.safetensors" || fail "no checkpoint before the run ended"
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
test ! -e killed/final.safetensors || fail "the run finished before the kill"
"$BIN" "${T[@]}" --shuffle-buffer 6 --workers 1 --out-dir killed --resume 2>/dev/null
"$PY" "$CMP" w1/final.safetensors killed/final.safetensors --traces w1/train.h5 killed/train.h5 >/dev/null
# A different shuffle buffer is a different order: different weights.
"$BIN" "${T[@]}" --workers 1 --shuffle-buffer 0 --out-dir b0 2>/dev/null
if "$PY" "$CMP" w1/final.safetensors b0/final.safetensors >/dev/null 2>&1; then fail "--shuffle-buffer had no effect"; fi
passed=$((passed + 1))

# 4. The index: written once, reused, refused when the folder changed, kept in memory with none.
I=(eval "${MB[@]}" --data-set imagenet --data-path imnet --batch-size 8)
"$BIN" index --data-set imagenet --data-path imnet --data-split test --index val.index >idx.txt
grep -q "index: 16 images in 4 classes" idx.txt || { cat idx.txt; fail "index job"; }
test -s val.index
"$BIN" "${I[@]}" --index val.index --json idx.json
[[ "$(eval_summary idx.json)" == "$want" ]] || fail "eval through --index"
cp imnet/val/n00000000/*_00000.JPEG imnet/val/n00000000/extra.JPEG
check_error "val.index: made from an older state of" "${I[@]}" --index val.index
"$BIN" "${I[@]}" --index none --json none.json
[[ "$(eval_summary none.json)" == 17\ * ]] || fail "--index none saw $(eval_summary none.json)"
rm imnet/val/n00000000/extra.JPEG
ls "$VITSLIM_CACHE_DIR"/index-*.bin >/dev/null || fail "no index in the cache directory $VITSLIM_CACHE_DIR"
"$BIN" index --data-set wds --data-path 'shards/train-{000000..000003}.tar' --index train.index >idx.txt
grep -q "index: 40 images in 4 shards" idx.txt || { cat idx.txt; fail "index job on shards"; }
# Train reads two splits: --index holds the training split's index, the test split uses the cache.
"$BIN" train "${MB[@]}" --data-set imagenet --data-path imnet --epochs 1 --steps-per-epoch 1 --warmup-epochs 0 \
  --batch-size 8 --eval-images 8 --entropy-images 0 --index tr.index --out-dir ti 2>/dev/null
"$BIN" train "${MB[@]}" --data-set imagenet --data-path imnet --epochs 1 --steps-per-epoch 1 --warmup-epochs 0 \
  --batch-size 8 --eval-images 8 --entropy-images 0 --index tr.index --out-dir ti2 2>/dev/null
"$BIN" index --data-set imagenet --data-path imnet --index tr.index | grep -q "index: 40 images in 4 classes"
echo garbage > bad.index
check_error "bad.index: not a vitslim index file (no index header); --index takes a file" "${I[@]}" --index bad.index
passed=$((passed + 1))

# 5. Bad shards: skipped with counts under --bad-images skip, one error line under fail.
mkdir bad
cp shards/val-00000{0,1,2}.tar bad/
: > bad/val-000003.tar                                   # empty shard
head -c 3000 shards/val-000002.tar > bad/val-000004.tar  # truncated inside its first image
"$PY" - <<'PYEOF'
import io, tarfile
def shard(path, members):
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in members:
            info = tarfile.TarInfo(name); info.size = len(data)
            t.addfile(info, io.BytesIO(data))
jpeg = open("imnet/val/n00000000/n00000000_00000.JPEG", "rb").read()
shard("bad/val-000005.tar", [("x/nolabel.jpg", jpeg), ("x/ok.jpg", jpeg), ("x/ok.cls", b"1")])
shard("bad/val-000006.tar", [("x/far.jpg", jpeg), ("x/far.cls", b"9"), ("x/fine.jpg", jpeg), ("x/fine.json", b'{"label": 2}')])
PYEOF
B=(eval "${MB[@]}" --data-set wds --data-path bad --data-split test --batch-size 8)
"$BIN" "${B[@]}" --json skip.json 2>skip.txt
for w in "val-000003.tar: empty shard" "val-000004.tar: damaged tar" "val-000005.tar: 1 sample(s) without a label" \
         "1 sample(s) with a label outside 0..3"; do
  grep -q "$w" skip.txt || { cat skip.txt; fail "no warning '$w'"; }
done
[[ "$(eval_summary skip.json)" == 14\ * ]] || fail "skip kept $(eval_summary skip.json) (12 whole + ok + fine)"
check_error "val-000003.tar: empty shard (no samples) (--bad-images fail)" "${B[@]}" --bad-images fail
check_error "matches no shard file" eval "${MB[@]}" --data-set wds --data-path 'nowhere/train-{000..009}.tar' --data-split test
check_error "no val-\*.tar shards" eval "${MB[@]}" --data-set wds --data-path imnet --data-split test
check_error "val-000004.tar: missing or not a file" eval "${MB[@]}" --data-set wds --data-path 'shards/val-{000000..000009}.tar' \
  --data-split test --bad-images fail
check_error "--data-set wds needs --data-path" eval "${MB[@]}" --data-set wds
check_error "--index applies to" eval --model vit_test --num-classes 10 --index x.index
passed=$((passed + 1))
echo "shards e2e: $passed passed, 0 failed"
