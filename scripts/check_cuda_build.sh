#!/usr/bin/env bash
# scripts/check_cuda_build.sh: builds vitslim once against the CUDA build of PyTorch (torch
# 2.14.1, CUDA 13) and NCCL, so the GPU code paths (the trainer on CUDA, the NCCL communicator,
# vitslim_nccl_check, vitslim_gpu_test) are compiled with -Werror and linked even on machines
# without a GPU; the two GPU checks then run and must report SKIP there (scripts/gpu_smoke.sh
# runs them on a GPU).
# The CUDA torch and its nvidia-* libraries come from the local package indexes pip is
# configured with (pip config: global.extra-index-url), never from the network; torch is
# installed without its cuda-bindings dependency (Python-only, not needed to link C++).
# The environment and build live in build-cuda/ (ignored by git).
# Usage: scripts/check_cuda_build.sh     (VITSLIM_CUDA_TORCH=2.14.1 by default)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/build-cuda"
VENV="$OUT/venv"
TORCH_VERSION="${VITSLIM_CUDA_TORCH:-2.14.1}"
JOBS="${VITSLIM_JOBS:-2}"
log() { echo "[check_cuda_build] $*"; }

# Local indexes only: pip's configured extra indexes replace PyPI for this install.
read -r -a INDEXES <<<"$(python3 -m pip config get global.extra-index-url 2>/dev/null || true)"
if [[ ${#INDEXES[@]} -eq 0 ]]; then
  log "SKIP: pip has no local package index configured (global.extra-index-url); cannot get torch $TORCH_VERSION offline"
  exit 0
fi
PIP_LOCAL=(--index-url "${INDEXES[0]}")
for extra in "${INDEXES[@]:1}"; do PIP_LOCAL+=(--extra-index-url "$extra"); done

if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
  log "creating $VENV with torch $TORCH_VERSION (CUDA) from ${INDEXES[*]}"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  P=("$VENV/bin/pip" install -q --disable-pip-version-check "${PIP_LOCAL[@]}")
  "${P[@]}" filelock typing-extensions setuptools sympy networkx jinja2 fsspec numpy \
    'cuda-toolkit[cublas,cudart,cufft,cufile,cupti,curand,cusolver,cusparse,nvjitlink,nvrtc,nvtx]' \
    nvidia-cudnn-cu13 nvidia-cusparselt-cu13 nvidia-nccl-cu13 nvidia-nvshmem-cu13
  "${P[@]}" --no-deps "torch==$TORCH_VERSION"
fi
PREFIX="$("$VENV/bin/python" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')"
log "torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)' 2>/dev/null)"

# The CUDA toolkit (nvcc) of the machine; the CUDA libraries torch links come from its wheels.
NVCC="$(command -v nvcc || true)"
[[ -n "$NVCC" ]] || { log "FAIL: nvcc not found (the CUDA toolkit is needed to configure a CUDA LibTorch)"; exit 1; }
CUDA_ROOT=""
for candidate in "${CUDA_HOME:-}" "${CUDA_PATH:-}" "$(dirname "$(dirname "$(readlink -f "$NVCC")")")" /usr/local/cuda; do
  if [[ -n "$candidate" && -f "$candidate/include/cuda_runtime.h" ]]; then CUDA_ROOT="$candidate"; break; fi
done
[[ -n "$CUDA_ROOT" ]] || { log "FAIL: no CUDA toolkit with include/cuda_runtime.h (set CUDA_HOME)"; exit 1; }
WHEELS="$("$VENV/bin/python" -c 'import nvidia, os; print(os.path.dirname(list(nvidia.__path__)[0]))')/nvidia"
rm -f "$OUT/build/CMakeCache.txt"
GENERATOR=()  # Ninja for a new build directory, when installed (scripts/setup.sh installs it)
[[ ! -f "$OUT/build/Makefile" ]] && command -v ninja >/dev/null && GENERATOR=(-G Ninja)
cmake -S "$ROOT" -B "$OUT/build" "${GENERATOR[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$PREFIX" \
  -DVITSLIM_PYTHON="$VENV/bin/python" -DVITSLIM_NCCL=ON -DNCCL_ROOT="$WHEELS/nccl" -DVITSLIM_WERROR=ON \
  -DCUDA_TOOLKIT_ROOT_DIR="$CUDA_ROOT" -DCMAKE_CUDA_COMPILER="$CUDA_ROOT/bin/nvcc" \
  -DCUDA_NVRTC_LIB="$(ls "$WHEELS"/cu*/lib/libnvrtc.so.* | head -n 1)" >"$OUT/cmake.log" 2>&1 ||
  { tail -n 30 "$OUT/cmake.log"; log "FAIL: CMake configure against the CUDA LibTorch"; exit 1; }
grep "vitslim dependency" "$OUT/cmake.log"
grep -q "vitslim dependency Torch: .*CUDA ON" "$OUT/cmake.log" || { log "FAIL: LibTorch was not seen as a CUDA build"; exit 1; }
cmake --build "$OUT/build" -j"$JOBS" --target vitslim vitslim_nccl_check vitslim_gpu_test
"$OUT/build/vitslim" --version
# They load the CUDA libraries and must exit 0: SKIP without a GPU, PASS with one.
"$OUT/build/vitslim_nccl_check"
"$OUT/build/vitslim_gpu_test" --gtest_brief=1
log "ok: vitslim, vitslim_nccl_check and vitslim_gpu_test built against torch $TORCH_VERSION with CUDA and NCCL"
