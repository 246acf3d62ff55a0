#!/usr/bin/env bash
# scripts/setup.sh: idempotent set-up of everything vitslim needs, then a Release build.
#   - Debian packages: compiler, CMake, Open MPI, Boost.Program_options, HDF5, nlohmann-json,
#     GoogleTest, zlib, libjpeg-turbo, libpng, dataset-fashion-mnist, mate-backgrounds (real
#     photos for the JPEG tests and bench-data), slurm-wlm + munge (the Slurm test; skipped when
#     already installed), ccache and Ninja (the build compiles through ccache and, in a new build
#     directory, with Ninja when they are present)
#   - a project virtual environment (.venv) from the `python3` on PATH with the pinned PyTorch
#     wheel (its LibTorch is what the C++ code links), NCCL headers/library (nvidia-nccl wheel),
#     and the Python tools the scripts use (timm, safetensors, h5py, matplotlib; onnx, onnxruntime and
#     openvino check and time ONNX exports; webdataset checks shard interoperability; torchvision
#     0.28.0 in .venv/extras is bench_index.sh's peer)
#   - configure + build (build/, Release, -j$(nproc))
# Environment knobs:
#   VITSLIM_TORCH_PREFIX=/path/to/libtorch   link an existing LibTorch instead of the wheel's
#   VITSLIM_BUILD_DIR=build                  build directory
#   VITSLIM_CMAKE_ARGS="..."                 extra CMake arguments (e.g. -DVITSLIM_NCCL=OFF)
#   VITSLIM_SKIP_APT=1                       do not touch Debian packages
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
BUILD_DIR="${VITSLIM_BUILD_DIR:-$ROOT/build}"
TORCH_VERSION="2.13.0"      # CPU build; LibTorch comes from this wheel
TIMM_VERSION="1.0.31"
NCCL_WHEEL="nvidia-nccl-cu13==2.30.7"
APT_PACKAGES=(build-essential cmake pkg-config openmpi-bin libopenmpi-dev
  libboost-program-options-dev libhdf5-dev hdf5-tools libgtest-dev libgmock-dev
  nlohmann-json3-dev zlib1g-dev libjpeg62-turbo-dev libpng-dev dataset-fashion-mnist mate-backgrounds
  slurm-wlm munge clang-format ccache ninja-build)
PY_PACKAGES=(numpy safetensors h5py matplotlib pyyaml huggingface_hub "pillow==13.0.0" "onnx==1.23.2"
  "onnxruntime==1.32.0" "openvino==2026.4.1" "webdataset==1.0.2" "transformers==5.25.0")

log() { printf '[setup] %s\n' "$*"; }

if [[ "${VITSLIM_SKIP_APT:-0}" != 1 ]]; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    log "Debian packages present"
  fi
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating virtual environment $VENV"
  python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
pip_q() { "$PY" -m pip install -q "$@" 2>&1 | grep -v -E '^WARNING: Location' || true; }
# True when every NAME[=VERSION-PREFIX] is installed (with that version), read from the packages'
# metadata: no imports, which cost seconds (torch, openvino) each time setup runs (test.sh, run.sh).
dist_ok() {
  "$PY" - "$@" <<'PYEOF' 2>/dev/null
import importlib.metadata as m, sys
for spec in sys.argv[1:]:
    name, _, want = spec.partition("=")
    try:
        have = m.version(name)
    except m.PackageNotFoundError:
        sys.exit(1)
    if not have.startswith(want):
        sys.exit(1)
PYEOF
}
if ! dist_ok "torch=$TORCH_VERSION"; then
  log "installing torch==$TORCH_VERSION"
  pip_q "torch==$TORCH_VERSION"
fi
if ! dist_ok safetensors h5py matplotlib numpy pyyaml huggingface_hub pillow=13.0.0 onnx=1.23.2 onnxruntime=1.32.0 \
  openvino=2026.4.1 webdataset=1.0.2 transformers=5.25.0; then
  log "installing Python tools: ${PY_PACKAGES[*]}"
  pip_q "${PY_PACKAGES[@]}"
fi
# timm's model code needs torch only; its torchvision dependency has no build matching the CPU
# torch, so timm is installed without dependencies (scripts/timm_compat.py covers the import).
if ! dist_ok "timm=$TIMM_VERSION"; then
  log "installing timm==$TIMM_VERSION (no deps)"
  pip_q --no-deps "timm==$TIMM_VERSION"
fi
# torchvision's ImageFolder is the peer of scripts/bench_index.sh: the release paired with torch
# 2.13, in a folder of its own (the venv keeps no torchvision; see scripts/imagenet_tree.py).
TV_DIR="$VENV/extras/torchvision-0.28.0"
if ! compgen -G "$TV_DIR/torchvision-*.dist-info" >/dev/null; then
  log "installing torchvision==0.28.0 (no deps) into $TV_DIR"
  pip_q --no-deps --target "$TV_DIR" "torchvision==0.28.0" || log "torchvision unavailable; bench_index.sh installs it on first use"
fi
if ! dist_ok "${NCCL_WHEEL%%==*}"; then
  log "installing $NCCL_WHEEL (NCCL headers and library for the NCCL code path)"
  pip_q --no-deps "$NCCL_WHEEL" || log "NCCL wheel unavailable; the NCCL code path will be off"
fi
dist_ok "torch=$TORCH_VERSION" || { log "FAIL: torch $TORCH_VERSION is not installed in $VENV"; exit 1; }

# torch.utils.cmake_prefix_path, found without importing torch.
TORCH_PREFIX="${VITSLIM_TORCH_PREFIX:-$("$PY" -c 'import importlib.util, os
print(os.path.join(importlib.util.find_spec("torch").submodule_search_locations[0], "share", "cmake"))')}"
log "LibTorch from $TORCH_PREFIX"
mkdir -p "$BUILD_DIR"
# A new build directory is generated for Ninja when it is installed (it starts each file as soon as
# what it needs is there; Make waits for whole libraries); an existing one keeps its generator.
GENERATOR=()
[[ ! -f "$BUILD_DIR/CMakeCache.txt" ]] && command -v ninja >/dev/null && GENERATOR=(-G Ninja)
# shellcheck disable=SC2086
cmake -S "$ROOT" -B "$BUILD_DIR" "${GENERATOR[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" -DVITSLIM_PYTHON="$PY" ${VITSLIM_CMAKE_ARGS:-} >"$BUILD_DIR/configure.log" 2>&1 \
  || { cat "$BUILD_DIR/configure.log"; exit 1; }
grep -E '^-- vitslim' "$BUILD_DIR/configure.log" || true
JOBS="${VITSLIM_JOBS:-$(nproc)}"
log "building with -j$JOBS"
cmake --build "$BUILD_DIR" -j"$JOBS"
log "done: $BUILD_DIR/vitslim"
