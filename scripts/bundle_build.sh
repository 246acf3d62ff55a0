#!/usr/bin/env bash
# scripts/bundle_build.sh: builds vitslim on a machine without its development packages and
# without network, from the Debian packages scripts/gpu_bundle.sh fetched (gpu-bundle/) and the
# LibTorch of that machine's own python3 torch (torch.utils.cmake_prefix_path). Used by
# scripts/gpu_smoke.sh on the GPU machine (--cuda) and by scripts/check_bundle_chroot.sh in a bare
# Debian chroot (--unit-tests, CPU torch).
#   1. preflight: one FAIL line naming what is missing (cmake, a C++ compiler, the bundle, torch
#      for this architecture, and with --cuda a CUDA torch, nvcc and NCCL's headers)
#   2. unpacks every .deb into PREFIX (dpkg-deb -x, or Python when dpkg is absent), makes the
#      Open MPI names (mpicc, mpiexec) and relocates Open MPI there with OPAL_PREFIX
#   3. PREFIX/env.sh: the environment to run the build (PATH, OPAL_PREFIX, LD_LIBRARY_PATH with
#      the bundle's shared libraries that the system lacks, and only those)
#   4. configures (Ninja when present) and builds with every core: vitslim + vitslim_nccl_check +
#      vitslim_gpu_test (--cuda), or vitslim + vitslim_unit (--unit-tests), which then runs
# Usage: scripts/bundle_build.sh [--cuda] [--unit-tests] [--bundle DIR] [--work DIR] [--python PY]
#   --work DIR: PREFIX is DIR/prefix, the build DIR/build (default build-bundle/)
#   --test-data DIR: the Python-made test inputs vitslim_unit reads (default: build/test-data)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUNDLE="$ROOT/gpu-bundle"
WORK="$ROOT/build-bundle"
PY=python3
CUDA=0
UNIT=0
TEST_DATA="$ROOT/build/test-data"
JOBS="${VITSLIM_JOBS:-$(nproc)}"
log() { echo "[bundle_build] $*"; }
fail() {
  echo "[bundle_build] FAIL: $*"
  exit 1
}
while (($#)); do
  case "$1" in
    --cuda) CUDA=1 ;;
    --unit-tests) UNIT=1 ;;
    --bundle) BUNDLE="$2"; shift ;;
    --work) WORK="$2"; shift ;;
    --python) PY="$2"; shift ;;
    --test-data) TEST_DATA="$2"; shift ;;
    *) fail "unknown argument '$1' (see the header of scripts/bundle_build.sh)" ;;
  esac
  shift
done
PREFIX="$WORK/prefix"
BUILD="$WORK/build"
ARCH_DIR=x86_64-linux-gnu

preflight() {
  [[ "$(uname -m)" == x86_64 ]] || fail "this machine is $(uname -m); the bundle holds x86-64 (amd64) packages"
  command -v cmake >/dev/null || fail "cmake not found"
  command -v c++ >/dev/null || command -v g++ >/dev/null || fail "no C++ compiler (c++ or g++) found"
  [[ -f "$BUNDLE/MANIFEST" ]] && compgen -G "$BUNDLE/*.deb" >/dev/null ||
    fail "no bundle in $BUNDLE (make it with scripts/gpu_bundle.sh where Debian's registry is reachable, and carry it)"
  (cd "$BUNDLE" && tail -n +2 MANIFEST | sha256sum --quiet -c -) || fail "the bundle in $BUNDLE does not match its MANIFEST"
  command -v "$PY" >/dev/null || fail "$PY not found"
  local torch
  # Read from the installed files, without importing torch (its Python dependencies are not needed
  # to link LibTorch): version.py, and the architecture of libtorch_cpu.so.
  torch=$("$PY" - <<'PY'
import importlib.util, os
spec = importlib.util.find_spec("torch")
root = list(spec.submodule_search_locations)[0]
ns = {}
exec(open(os.path.join(root, "version.py")).read(), ns)
elf = open(os.path.join(root, "lib", "libtorch_cpu.so"), "rb").read(20)
machine = {62: "x86_64", 183: "aarch64"}.get(int.from_bytes(elf[18:20], "little"), "unknown")
print(ns["__version__"], machine, ns.get("cuda") or "cpu", os.path.join(root, "share", "cmake"))
PY
  ) || fail "$PY has no torch (or no torch/lib/libtorch_cpu.so)"
  read -r TORCH_VERSION TORCH_ARCH TORCH_CUDA TORCH_PREFIX <<<"$torch"
  [[ "$TORCH_ARCH" == x86_64 ]] || fail "torch $TORCH_VERSION of $PY is for $TORCH_ARCH, not x86_64"
  [[ -f "$TORCH_PREFIX/Torch/TorchConfig.cmake" ]] || fail "torch $TORCH_VERSION has no LibTorch CMake files in $TORCH_PREFIX"
  if ((CUDA)); then
    [[ "$TORCH_CUDA" != cpu ]] || fail "torch $TORCH_VERSION of $PY is a CPU build; the GPU checks need a CUDA torch"
    NVCC=$(command -v nvcc || true)
    for candidate in "${CUDA_HOME:-}" /usr/local/cuda; do
      [[ -z "$NVCC" && -x "$candidate/bin/nvcc" ]] && NVCC="$candidate/bin/nvcc"
    done
    [[ -n "$NVCC" ]] || fail "nvcc not found (PATH, CUDA_HOME, /usr/local/cuda)"
    CUDA_ROOT="$(dirname "$(dirname "$(readlink -f "$NVCC")")")"
    [[ -f "$CUDA_ROOT/include/cuda_runtime.h" ]] || fail "no include/cuda_runtime.h beside $NVCC"
    NCCL_ROOT=$("$PY" - <<'PY'
import glob, os, site, sys
for base in site.getsitepackages() + [site.getusersitepackages()]:
    for header in glob.glob(os.path.join(base, "nvidia", "**", "nccl.h"), recursive=True):
        print(os.path.dirname(os.path.dirname(header)))
        sys.exit(0)
PY
    ) || true
    [[ -n "$NCCL_ROOT" ]] || fail "no nccl.h in $PY's nvidia-nccl wheel (site-packages/nvidia/**/nccl.h)"
    NVRTC=$(ls "$CUDA_ROOT"/lib64/libnvrtc.so.* 2>/dev/null | head -n 1 || true)
    [[ -n "$NVRTC" ]] || NVRTC=$(ls "$(dirname "$NCCL_ROOT")"/cu*/lib/libnvrtc.so.* 2>/dev/null | head -n 1 || true)
    [[ -n "$NVRTC" ]] || fail "no libnvrtc.so in $CUDA_ROOT/lib64 nor in the nvidia wheels"
  fi
  log "torch $TORCH_VERSION ($TORCH_CUDA) from $PY; bundle $BUNDLE ($(ls "$BUNDLE"/*.deb | wc -l) packages)"
}

# Extracts one .deb into $PREFIX: dpkg-deb when there is one, else Python (ar + tar).
unpack_deb() {
  if command -v dpkg-deb >/dev/null; then
    dpkg-deb -x "$1" "$PREFIX"
    return
  fi
  "$PY" - "$1" "$PREFIX" <<'PY'
import io, sys, tarfile
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"!<arch>\n", "not a .deb"
at = 8
while at < len(data):
    name, size = data[at:at + 16].decode().strip().rstrip("/"), int(data[at + 48:at + 58])
    body = data[at + 60:at + 60 + size]
    if name.startswith("data.tar"):
        with tarfile.open(fileobj=io.BytesIO(body)) as t:
            t.extractall(sys.argv[2], filter="tar")
        break
    at += 60 + size + (size & 1)
PY
}

unpack() {
  if cmp -s "$BUNDLE/MANIFEST" "$PREFIX/MANIFEST"; then
    log "prefix $PREFIX is up to date"
  else
    rm -rf "$PREFIX"
    mkdir -p "$PREFIX"
    for deb in "$BUNDLE"/*.deb; do unpack_deb "$deb" || fail "cannot unpack $deb"; done
    cp "$BUNDLE/MANIFEST" "$PREFIX/MANIFEST"
    log "unpacked $(ls "$BUNDLE"/*.deb | wc -l) packages into $PREFIX"
  fi
  local bin="$PREFIX/usr/bin"
  for name in mpicc mpicxx mpiexec mpirun; do ln -sfn "$name.openmpi" "$bin/$name"; done
  # The bundle's shared libraries that the system's loader cannot find, linked into one folder.
  local fill="$PREFIX/fill" known lib
  rm -rf "$fill"
  mkdir -p "$fill"
  known=$( (ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null || true) | awk '{print $1}' | sort -u)
  while IFS= read -r lib; do
    grep -qxF "$(basename "$lib")" <<<"$known" || ln -sfn "$lib" "$fill/$(basename "$lib")"
  done < <(find "$PREFIX/usr/lib" "$PREFIX/lib" -name '*.so.*' \( -type f -o -type l \) 2>/dev/null | sort)
  cat >"$PREFIX/env.sh" <<EOF
# The environment of the bundle in $PREFIX (written by scripts/bundle_build.sh).
export OPAL_PREFIX="$PREFIX/usr"
export PATH="$PREFIX/usr/bin:\$PATH"
export LD_LIBRARY_PATH="$fill:$PREFIX/usr/lib/$ARCH_DIR/openmpi/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Debian's multiarch headers (jconfig.h), which the compiler searches only under /usr.
export CPATH="$PREFIX/usr/include/$ARCH_DIR\${CPATH:+:\$CPATH}"
EOF
  log "$(ls "$fill" | wc -l) of the bundle's libraries are missing on this system and come from the bundle"
}

configure_and_build() {
  # shellcheck source=/dev/null
  source "$PREFIX/env.sh"
  local generator=() targets=(vitslim) args=()
  command -v ninja >/dev/null && generator=(-G Ninja)
  if ((CUDA)); then
    targets+=(vitslim_nccl_check vitslim_gpu_test)
    args+=(-DVITSLIM_NCCL=ON -DNCCL_ROOT="$NCCL_ROOT" -DCUDA_TOOLKIT_ROOT_DIR="$CUDA_ROOT"
      -DCMAKE_CUDA_COMPILER="$CUDA_ROOT/bin/nvcc" -DCUDA_NVRTC_LIB="$NVRTC")
  else
    args+=(-DVITSLIM_NCCL=OFF)
  fi
  ((UNIT)) && targets+=(vitslim_unit) && args+=(-DVITSLIM_TEST_DATA_DIR="$TEST_DATA")
  rm -f "$BUILD/CMakeCache.txt"
  cmake -S "$ROOT" -B "$BUILD" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$PREFIX/usr;$TORCH_PREFIX" -DMPI_C_COMPILER="$PREFIX/usr/bin/mpicc" \
    -DMPIEXEC_EXECUTABLE="$PREFIX/usr/bin/mpiexec" -DVITSLIM_PYTHON="$(command -v "$PY")" -DVITSLIM_CCACHE=OFF \
    "${args[@]}" >"$WORK/cmake.log" 2>&1 || {
    tail -n 25 "$WORK/cmake.log"
    fail "CMake configure against the bundle (log: $WORK/cmake.log)"
  }
  grep "vitslim dependency" "$WORK/cmake.log" || true
  local started=$SECONDS
  cmake --build "$BUILD" -j"$JOBS" --target "${targets[@]}" >"$WORK/build.log" 2>&1 || {
    grep -E "error|Error" "$WORK/build.log" | head -n 20
    fail "build (log: $WORK/build.log)"
  }
  log "built ${targets[*]} in $((SECONDS - started)) s with $JOBS jobs"
  local missing
  missing=$(ldd "$BUILD/vitslim" | grep "not found" || true)
  [[ -z "$missing" ]] || fail "vitslim cannot load: $missing"
  "$BUILD/vitslim" --version
}

run_unit_tests() {
  [[ -d "$TEST_DATA" ]] || fail "no test data in $TEST_DATA (--test-data: a build/test-data made by scripts/setup.sh)"
  local started=$SECONDS
  "$BUILD/vitslim_unit" --gtest_brief=1 >"$WORK/unit.log" 2>&1 || {
    grep -E "FAILED|Failure" "$WORK/unit.log" | head -n 20
    fail "unit tests (log: $WORK/unit.log)"
  }
  log "unit tests: $(grep -E '^\[  PASSED  \]' "$WORK/unit.log") in $((SECONDS - started)) s"
}

mkdir -p "$WORK"
preflight
unpack
configure_and_build
((UNIT)) && run_unit_tests
log "ok: $BUILD"
