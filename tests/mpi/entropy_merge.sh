#!/usr/bin/env bash
# Entropy under mpiexec -np 2 (each rank a shard, statistics merged at rank 0) equals the 1-rank
# result on Debian's Fashion-MNIST; an error on the ranks ends the job with an error, no hang;
# ranks with different settings or data are refused at start; an image folder is listed once, by
# rank 0, for every rank.
set -euo pipefail
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
ARGS=(entropy --calib-images 1000 --batch-size 64 --seed 5 --threads 1)
"$VITSLIM_BIN" "${ARGS[@]}" --out one.h5 --json one.json
"$MPIEXEC" -np 2 "$VITSLIM_BIN" "${ARGS[@]}" --out two.h5 --json two.json
"$VITSLIM_PYTHON" "$VITSLIM_SCRIPTS/check_trace.py" two.h5 --json two.json --expect-complete --expect-images 1000 \
  --compare one.json --world-size 2
# A bad input on every rank: non-zero exit within the timeout, no trace left.
if timeout 120 "$MPIEXEC" -np 2 "$VITSLIM_BIN" entropy --weights /nonexistent.pth --out bad.h5 2>err.txt; then
  echo "FAIL: bad input under mpiexec exited 0"; exit 1
fi
grep -q "nonexistent.pth" err.txt
test ! -e bad.h5 && test ! -e bad.h5.partial
# Ranks started with different settings (an MPMD launch): refused at start, naming the rank and
# the setting, within the timeout; nothing written.
S=(entropy --model vit_test --data-set synthetic --threads 1 --out mixed.h5)
if timeout 120 "$MPIEXEC" -np 1 "$VITSLIM_BIN" "${S[@]}" --calib-images 64 : -np 1 "$VITSLIM_BIN" "${S[@]}" \
    --calib-images 32 2>err.txt; then
  echo "FAIL: ranks with different settings exited 0"; exit 1
fi
grep -q "ranks disagree on their settings: rank 1 has 'calib-images = 32' where rank 0 has 'calib-images = 64'" err.txt \
  || { cat err.txt; exit 1; }
test ! -e mixed.h5 && test ! -e mixed.h5.partial
# Same settings, but one rank's copy of the data (its own working directory) lacks records:
# refused at start, naming the data, instead of mixing shards of different datasets.
mkdir -p a/c10 b/c10
"$VITSLIM_PYTHON" -c "
import os, sys
for path, n in (('a/c10/data_batch_1.bin', 10), ('b/c10/data_batch_1.bin', 9)):
    open(path, 'wb').write(b''.join(bytes([i % 10]) + os.urandom(3072) for i in range(n)))"
D=(entropy --model vit_test --img-size 32 --num-classes 10 --data-set cifar10 --data-path c10 --calib-images 4
   --threads 1 --out "$WORK/data.h5")
if timeout 120 "$MPIEXEC" -np 1 -wdir "$WORK/a" "$VITSLIM_BIN" "${D[@]}" : -np 1 -wdir "$WORK/b" "$VITSLIM_BIN" \
    "${D[@]}" 2>err.txt; then
  echo "FAIL: ranks with different data exited 0"; exit 1
fi
grep -q "ranks disagree on their data: rank 1 has 'cifar10 train: 9 images" err.txt || { cat err.txt; exit 1; }
test ! -e data.h5 && test ! -e data.h5.partial
# An image folder is listed once, by rank 0 (an absolute path), and every rank uses that listing:
# a rank whose working directory holds another copy cannot mix in a different dataset.
"$VITSLIM_PYTHON" "$VITSLIM_SCRIPTS/make_image_folder.py" a/imnet --train 8 --val 4 --classes 2 >/dev/null
cp -r a/imnet b/imnet
images=(b/imnet/train/*/*.JPEG)
rm "${images[0]}"
F=(entropy --model vit_test --img-size 32 --num-classes 2 --data-set imagenet --data-path imnet --calib-images 8
   --threads 1 --out "$WORK/folder.h5" --index none)
timeout 120 "$MPIEXEC" -np 1 -wdir "$WORK/a" "$VITSLIM_BIN" "${F[@]}" : -np 1 -wdir "$WORK/b" "$VITSLIM_BIN" "${F[@]}" \
  2>err.txt >/dev/null || { cat err.txt; echo "FAIL: ranks sharing rank 0's listing"; exit 1; }
grep -q "imagenet train (8 images" err.txt || { cat err.txt; echo "FAIL: not rank 0's 8 images"; exit 1; }
echo "mpi entropy: 5 passed, 0 failed"
