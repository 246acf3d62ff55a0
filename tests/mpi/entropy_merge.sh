#!/usr/bin/env bash
# Entropy under mpiexec -np 2 (each rank a shard, statistics merged at rank 0) equals the 1-rank
# result on Debian's Fashion-MNIST; an error on the ranks ends the job with an error, no hang;
# ranks with different settings are refused at start.
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
# Same settings, but one rank's copy of the image folder lacks a file (its own working directory):
# refused at start, naming the data, instead of mixing shards of different datasets.
mkdir -p a b
"$VITSLIM_PYTHON" "$VITSLIM_SCRIPTS/make_image_folder.py" a/imnet --train 8 --val 4 --classes 2 >/dev/null
cp -r a/imnet b/imnet
images=(b/imnet/train/*/*.JPEG)
rm "${images[0]}"
D=(entropy --model vit_test --img-size 32 --num-classes 2 --data-set imagenet --data-path imnet --calib-images 4
   --threads 1 --out "$WORK/data.h5")
if timeout 120 "$MPIEXEC" -np 1 -wdir "$WORK/a" "$VITSLIM_BIN" "${D[@]}" : -np 1 -wdir "$WORK/b" "$VITSLIM_BIN" \
    "${D[@]}" 2>err.txt; then
  echo "FAIL: ranks with different data exited 0"; exit 1
fi
grep -q "ranks disagree on their data: rank 1 has 'imagenet train: 7 images" err.txt || { cat err.txt; exit 1; }
test ! -e data.h5 && test ! -e data.h5.partial
echo "mpi entropy: 4 passed, 0 failed"
