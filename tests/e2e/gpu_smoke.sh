#!/usr/bin/env bash
# scripts/gpu_smoke.sh without a GPU: it parses (bash -n) and, against fake binaries that answer
# like vitslim, vitslim_nccl_check, vitslim_gpu_test and mpiexec do on a GPU, prints a PASS line
# per check and the DeiT-B numbers, exits 0; a CUDA loss off by 10% and a skipped GPU test are
# FAIL lines and a non-zero exit.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
SMOKE="$VITSLIM_SCRIPTS/gpu_smoke.sh"
bash -n "$SMOKE"
mkdir fake
cat >fake/vitslim <<'FAKE'
#!/usr/bin/env bash
# Fake vitslim: train writes train.json (CUDA losses scaled by FAKE_LOSS_SCALE); bench writes JSON.
job=$1; shift
out="" json="" device=cpu
while [[ $# -gt 0 ]]; do
  case $1 in
    --out-dir) out=$2; shift ;;
    --json) json=$2; shift ;;
    --device) device=$2; shift ;;
  esac
  shift
done
if [[ $job == train ]]; then
  if [[ -n "${FAKE_RANKS:-}" ]]; then echo "vitslim: error: --device cuda: ranks 0 and 1 share one GPU (h 0000:1b:00.0)" >&2; exit 1; fi
  loss=2.30000
  [[ $device == cuda ]] && loss=$(python3 -c "print(2.3 * ${FAKE_LOSS_SCALE:-1.0004})")
  mkdir -p "$out" && echo "{\"finished\": true, \"last_loss\": $loss, \"last_top1\": 41.5}" >"$out/train.json"
elif [[ $job == bench ]]; then
  echo '{"models": [{"model": "full", "macs_per_image": 17.56e9, "inference": {"images_per_s": 9000}, "train_step": {"images_per_s": 3000}},
        {"model": "pruned", "macs_per_image": 15.1e9, "inference": {"images_per_s": 10500}, "train_step": {"images_per_s": 3600}}]}' >"$json"
fi
FAKE
printf '#!/usr/bin/env bash\necho "NCCL allreduce: 1 rank(s), 1048576 floats (4.0 MiB), 30.0 us"\necho "PASS (0 failing rank(s))"\n' >fake/vitslim_nccl_check
printf '#!/usr/bin/env bash\necho "[  %s   ] 2 tests."\n' "${FAKE_GTEST:-PASSED}" >fake/vitslim_gpu_test
printf '#!/usr/bin/env bash\nshift 2\nFAKE_RANKS=2 "$@"\n' >fake/mpiexec
chmod +x fake/*

rc=0
VITSLIM_BUILD=$PWD/fake MPIEXEC=$PWD/fake/mpiexec VITSLIM_DATA=$PWD bash "$SMOKE" >ok.txt 2>&1 || rc=$?
cat ok.txt
[[ $rc -eq 0 && $(grep -c "^PASS" ok.txt) -eq 7 ]] || { echo "FAIL: expected 7 PASS lines and exit 0 (exit $rc)"; exit 1; }
grep -q "DeiT-B bf16 batch 256 full: 3000 img/s training, MFU 32.0% of 989 TFLOPS" ok.txt || { echo "FAIL: MFU line"; exit 1; }
grep -q "pruned/full speed-up: training 1.200x" ok.txt || { echo "FAIL: speed-up line"; exit 1; }
echo "ok   all checks pass against fake binaries"

rc=0
printf '#!/usr/bin/env bash\necho "[  SKIPPED ] 2 tests"\n' >fake/vitslim_gpu_test
FAKE_LOSS_SCALE=1.1 VITSLIM_BUILD=$PWD/fake MPIEXEC=$PWD/fake/mpiexec VITSLIM_DATA=$PWD bash "$SMOKE" >bad.txt 2>&1 || rc=$?
cat bad.txt
[[ $rc -ne 0 ]] && grep -q "^FAIL train_cuda: step-3 loss 2.53000" bad.txt && grep -q "^FAIL train_bf16" bad.txt &&
  grep -q "^FAIL reducer" bad.txt && grep -q "3 check(s) failed" bad.txt || { echo "FAIL: failures not reported"; exit 1; }
echo "ok   a wrong CUDA loss and a skipped GPU test are FAIL lines, exit $rc"
