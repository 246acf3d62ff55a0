#!/usr/bin/env bash
# scripts/check_sanitizers.sh: builds the unit tests (and every layer under them) with
# AddressSanitizer + UndefinedBehaviorSanitizer in build-asan/ and runs them with ctest, fuzz
# targets included: a heap overflow, use after free, signed overflow or misaligned access in
# vitslim's code fails the run. The project's venv (scripts/setup.sh) provides LibTorch and the
# Python fixtures. Usage: scripts/check_sanitizers.sh [ctest args]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/build-asan"
PY="$ROOT/.venv/bin/python"
JOBS="${VITSLIM_JOBS:-2}"
log() { echo "[check_sanitizers] $*"; }
[[ -x "$PY" ]] || { log "FAIL: no $PY; run scripts/setup.sh first"; exit 1; }
PREFIX="$("$PY" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')"
mkdir -p "$OUT"
# The Python-made inputs of the release build (scripts/test.sh made them) are the same files: reused,
# and the fixture tests that make them are skipped. Without them, this build makes its own.
DATA_ARGS=(-DVITSLIM_TEST_DATA_DIR=)
CTEST_FIXTURES=()
REUSE="$ROOT/build/test-data"
if [[ -z "${VITSLIM_SANITIZE_OWN_DATA:-}" && -f "$REUSE/deit_tiny.pth" && -d "$REUSE/images" &&
      -f "$REUSE/tome_golden_weights.safetensors" && -f "$REUSE/variants/variant_costs.json" && -f "$REUSE/hf/cases.json" ]]; then
  DATA_ARGS=(-DVITSLIM_TEST_DATA_DIR="$REUSE")
  CTEST_FIXTURES=(-FS checkpoints)
  log "reusing the test inputs of $REUSE (VITSLIM_SANITIZE_OWN_DATA=1: make them anew)"
fi
GENERATOR=()  # Ninja for a new build directory, when installed (scripts/setup.sh installs it)
[[ ! -f "$OUT/CMakeCache.txt" ]] && command -v ninja >/dev/null && GENERATOR=(-G Ninja)
# -O1 -g1 (line tables): what ASan's reports need (file:line of every frame) at about half the
# compile time of -O2 -g, whose full debug info of LibTorch's templates dominates the build.
cmake -S "$ROOT" -B "$OUT" "${GENERATOR[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" -DCMAKE_PREFIX_PATH="$PREFIX" -DVITSLIM_PYTHON="$PY" \
  -DVITSLIM_SANITIZE=ON -DVITSLIM_NCCL=OFF "${DATA_ARGS[@]}" >"$OUT/configure.log" 2>&1 ||
  { tail -n 30 "$OUT/configure.log"; exit 1; }
cmake --build "$OUT" -j"$JOBS" --target vitslim_unit
# LibTorch is not instrumented: its containers would look overflowed to ASan, and its global
# allocations are never freed (no leak report). Any other report ends the run.
export ASAN_OPTIONS="detect_container_overflow=0:detect_leaks=0:detect_odr_violation=0:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cd "$OUT"
# The unit tests (label unit; not the e2e/MPI/Slurm scripts: those run the release build), two at a
# time, with the fixtures they need unless reused.
ctest --output-on-failure --timeout 900 -j"$JOBS" -L unit "${CTEST_FIXTURES[@]}" "$@"
log "ok: unit and fuzz tests clean under ASan + UBSan"
