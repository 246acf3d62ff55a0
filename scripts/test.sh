#!/usr/bin/env bash
# scripts/test.sh: set up (scripts/setup.sh, idempotent) and run every test with ctest:
# unit tests, the golden test against timm, end-to-end CLI tests and 2-rank MPI tests.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${VITSLIM_BUILD_DIR:-$ROOT/build}"
bash "$ROOT/scripts/setup.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cd "$BUILD_DIR"
ctest --output-on-failure --timeout 900 "$@"
