#!/usr/bin/env bash
# The GPU kit (scripts/gpu_smoke.sh) without a GPU: every check runs its real vitslim commands with
# VITSLIM_SMOKE_DEVICE=cpu (twins on the CPU, so each comparison must pass), and the DeiT-B numbers
# at toy sizes (VITSLIM_SMOKE_NUMBERS=tiny), while fake
# vitslim_nccl_check, vitslim_gpu_test, mpiexec and a wrapper that answers "share one GPU" for the
# 2-rank run stand in for what needs a GPU. Then: a failing job and a skipped GPU test are FAIL
# lines and a non-zero exit; the preflight stops with one line when a binary or mpiexec is missing
# or the build folder holds unresolved libraries; the comparisons (scripts/gpu_compare.py) flag
# differences beyond their limits, and the MFU line counts DeiT-B's executed multiply-adds.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
SMOKE="$VITSLIM_SCRIPTS/gpu_smoke.sh"
COMPARE="$VITSLIM_SCRIPTS/gpu_compare.py"
bash -n "$SMOKE"
bash -n "$VITSLIM_SCRIPTS/bundle_build.sh"
bash -n "$VITSLIM_SCRIPTS/gpu_bundle.sh"
bash -n "$VITSLIM_SCRIPTS/check_bundle_chroot.sh"
mkdir fake
cat >fake/vitslim <<FAKE
#!/usr/bin/env bash
# vitslim itself, except what a GPU machine answers differently.
[[ -n "\${FAKE_RANKS:-}" ]] && { echo "vitslim: error: --device cuda: ranks 0 and 1 share one GPU (h 0000:1b:00.0)" >&2; exit 1; }
if [[ "\$1" == "\${FAKE_FAIL_JOB:-}" && "\$*" == *-dev.* ]]; then echo "vitslim: error: CUDA error: an illegal memory access" >&2; exit 1; fi
exec "$BIN" "\$@"
FAKE
printf '#!/usr/bin/env bash\necho "NCCL allreduce: 1 rank(s), 1048576 floats (4.0 MiB), 30.0 us"\necho "PASS (0 failing rank(s))"\n' >fake/vitslim_nccl_check
printf '#!/usr/bin/env bash\necho "[  PASSED  ] 2 tests."\n' >fake/vitslim_gpu_test
printf '#!/usr/bin/env bash\nshift 2\nFAKE_RANKS=2 "$@"\n' >fake/mpiexec
chmod +x fake/*
export VITSLIM_BUILD=$PWD/fake MPIEXEC=$PWD/fake/mpiexec VITSLIM_SMOKE_DEVICE=cpu VITSLIM_SMOKE_NUMBERS=0
export VITSLIM_PYTHON="$PY"

rc=0
VITSLIM_SMOKE_NUMBERS=tiny VITSLIM_SMOKE_OUT=$PWD/ok bash "$SMOKE" >ok.txt 2>&1 || rc=$?
cat ok.txt
checks=(nccl_check shared_gpu reducer bench_fp32 bench_bf16 entropy search eval predict tome export_sample train_cuda
  train_bf16 train_planes train_erase pipeline)
for c in "${checks[@]}"; do grep -q "^PASS $c: " ok.txt || { echo "FAIL: no PASS line for $c"; exit 1; }; done
[[ $rc -eq 0 && $(grep -c "^PASS" ok.txt) -eq ${#checks[@]} ]] || { echo "FAIL: expected ${#checks[@]} PASS lines and exit 0 (exit $rc)"; exit 1; }
grep -q "^PASS search: NOSE picks 0.25: \[" ok.txt || { echo "FAIL: search detail"; exit 1; }
for line in "DeiT-B bf16 batch 2 full: .* img/s training (vitslim train, 2 steps, synthetic data), 16.35 GMACs" \
  "DeiT-B bf16 batch 2 pruned: .* 13.73 GMACs executed per image" "timm eager DeiT-B bf16 batch 2: .* img/s training" \
  "NOSE search of DeiT-B at 50% over 4 synthetic images: [0-9]* s" "DeiT-B bf16 batch 2 inference: full .*pruned/full"; do
  grep -q "^$line" ok.txt || { echo "FAIL: no numbers line '$line'"; exit 1; }
done
grep -q "^numbers:" ok.txt && { echo "FAIL: a numbers step failed"; exit 1; }
echo "ok   all ${#checks[@]} checks pass with their real commands on the CPU, and the numbers at toy sizes"

rc=0
printf '#!/usr/bin/env bash\necho "[  SKIPPED ] 2 tests"\n' >fake/vitslim_gpu_test
FAKE_FAIL_JOB=eval VITSLIM_SMOKE_OUT=$PWD/bad bash "$SMOKE" >bad.txt 2>&1 || rc=$?
cat bad.txt
[[ $rc -ne 0 ]] && grep -q "^FAIL eval: eval --device cpu failed: vitslim: error: CUDA error" bad.txt &&
  grep -q "^FAIL reducer: \[  SKIPPED" bad.txt && grep -q "2 check(s) failed" bad.txt ||
  { echo "FAIL: failures not reported"; exit 1; }
echo "ok   a failing job and a skipped GPU test are FAIL lines, exit $rc"

# Preflight: one line, before any check.
expect_stop() {  # what the line must say, then the environment changes
  local want=$1 rc=0
  shift
  env "$@" bash "$SMOKE" >stop.txt 2>&1 || rc=$?
  [[ $rc -ne 0 ]] && grep -q "^FAIL preflight: .*$want" stop.txt && ! grep -q "^PASS" stop.txt ||
    { cat stop.txt; echo "FAIL: preflight should name: $want"; exit 1; }
}
mkdir empty
expect_stop "vitslim not found" VITSLIM_BUILD=$PWD/empty VITSLIM_SMOKE_OUT=$PWD/s1
expect_stop "no mpiexec" MPIEXEC=$PWD/empty/mpiexec VITSLIM_SMOKE_OUT=$PWD/s2
expect_stop "is not empty" VITSLIM_SMOKE_OUT=$PWD/ok
expect_stop "nvidia-smi not found" VITSLIM_SMOKE_DEVICE=cuda PATH=/usr/bin:/bin VITSLIM_SMOKE_OUT=$PWD/s3
echo "ok   preflight names the missing binary, mpiexec, a used output folder and the driver"

# The bundle build's preflight: a missing bundle, a damaged one, a torch for another architecture,
# and a CPU torch where the GPU build needs CUDA; one FAIL line each, nothing built.
BUILD_SH="$VITSLIM_SCRIPTS/bundle_build.sh"
expect_build_fail() {  # what the line must say, then the arguments
  local want=$1 rc=0
  shift
  bash "$BUILD_SH" --work "$PWD/bw" "$@" >build.txt 2>&1 || rc=$?
  [[ $rc -ne 0 ]] && grep -q "^\[bundle_build\] FAIL: .*$want" build.txt && [[ ! -d bw/build ]] ||
    { cat build.txt; echo "FAIL: bundle_build should name: $want"; exit 1; }
}
expect_build_fail "no bundle in $PWD/nothing" --bundle "$PWD/nothing"
mkdir bundle && echo "not really a package" >bundle/libfake_1_amd64.deb
(cd bundle && { echo "header"; sha256sum -- *.deb; } >MANIFEST)
mkdir -p fakepy/torch/lib && touch fakepy/torch/__init__.py  # a regular package: found before the venv's torch
echo "__version__ = '2.11.0+cu130'; cuda = '13.0'" >fakepy/torch/version.py
"$PY" -c "import sys; open(sys.argv[1], 'wb').write(b'\x7fELF' + bytes(14) + (183).to_bytes(2, 'little'))" fakepy/torch/lib/libtorch_cpu.so
PYTHONPATH=$PWD/fakepy expect_build_fail "is for aarch64, not x86_64" --bundle "$PWD/bundle" --python "$PY"
echo "__version__ = '2.13.0+cpu'; cuda = None" >fakepy/torch/version.py
"$PY" -c "import sys; open(sys.argv[1], 'wb').write(b'\x7fELF' + bytes(14) + (62).to_bytes(2, 'little'))" fakepy/torch/lib/libtorch_cpu.so
mkdir -p fakepy/torch/share/cmake/Torch && touch fakepy/torch/share/cmake/Torch/TorchConfig.cmake
PYTHONPATH=$PWD/fakepy expect_build_fail "is a CPU build; the GPU checks need a CUDA torch" --cuda --bundle "$PWD/bundle" \
  --python "$PY"
echo "tampered" >>bundle/libfake_1_amd64.deb
expect_build_fail "does not match its MANIFEST" --bundle "$PWD/bundle"
echo "ok   bundle_build preflight: missing or damaged bundle, foreign-architecture torch, CPU torch for --cuda"

# The comparisons themselves.
cat >a.json <<'J'
{"blocks": [{"block": 0, "attn_entropy": 2.0, "mlp_entropy": 3.0}], "head": {"entropy": 1.0},
 "selections": [{"ratio": 0.5, "layers": [1, 2]}], "top1_correct": 10, "top5_correct": 20, "images": 30,
 "points": [{"r": 0, "start": 0, "top1": 50.0}], "finished": true, "last_loss": 2.0, "last_top1": 40.0,
 "epochs": 1, "steps_per_epoch": 10, "global_batch": 256, "step_seconds": 1.0}
J
sed -e 's/"attn_entropy": 2.0/"attn_entropy": 2.001/' -e 's/\[1, 2\]/[1, 3]/' -e 's/"top1_correct": 10/"top1_correct": 11/' \
  -e 's/"top1": 50.0/"top1": 51.0/' -e 's/"last_loss": 2.0/"last_loss": 2.1/' a.json >b.json
for cmd in "entropy a.json b.json 1e-4" "search a.json b.json" "eval a.json b.json" "tome a.json b.json 0.5" \
  "train a.json b.json 2e-3"; do
  read -r -a words <<<"$cmd"
  line=$("$PY" "$COMPARE" "${words[@]}")
  [[ $line == bad* ]] || { echo "FAIL: gpu_compare $cmd: $line"; exit 1; }
  line=$("$PY" "$COMPARE" "${words[0]}" a.json a.json "${words[@]:3}")
  [[ $line == ok* ]] || { echo "FAIL: gpu_compare ${words[0]} on equal files: $line"; exit 1; }
done
line=$("$PY" "$COMPARE" entropy a.json b.json 1e-3)
[[ $line == ok* ]] || { echo "FAIL: 5e-4 relative is within 1e-3: $line"; exit 1; }
line=$("$PY" "$COMPARE" eval a.json missing.json)
[[ $line == "bad cannot compare"* ]] || { echo "FAIL: a missing file: $line"; exit 1; }
# DeiT-B at 224 px: 17.57 GMACs per image counting every row of the last block (what fvcore and
# timm report); the CLS-only last block executes 1.22 G fewer (its keys and values stay): 16.35 G,
# so 2,560 images/s at 989 TFLOPS is 25.4% MFU.
"$PY" -c "
import sys; sys.path.insert(0, '$VITSLIM_SCRIPTS')
from gpu_compare import deit_base_macs
full = deit_base_macs(set())
assert abs(full / 1e9 - 16.348) < 0.001, full
assert deit_base_macs({0, 1, 3, 4, 6}) < full
"
line=$("$PY" "$COMPARE" mfu a.json 989 full "")
[[ $line == *"2560 img/s training"*"16.35 GMACs executed per image, MFU 25.4% of 989 TFLOPS"* ]] || { echo "FAIL: mfu: $line"; exit 1; }
echo "ok   gpu_compare flags differences beyond their limits; MFU counts executed multiply-adds"
