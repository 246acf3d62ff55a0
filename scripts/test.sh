#!/usr/bin/env bash
# scripts/test.sh: set up (scripts/setup.sh, idempotent) and run every test with ctest, side by side
# on every core (ctest -j; tests that need both cores or a Slurm say so and run alone): unit tests,
# the golden tests against timm, end-to-end CLI tests, 2-rank MPI tests and the Slurm tests. Ends
# with a table of the ten slowest tests. Arguments go to ctest: `-L unit` (the fast subset),
# `-L e2e`, `-R NAME`, `-N` (list only). VITSLIM_TEST_JOBS overrides -j.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${VITSLIM_BUILD_DIR:-$ROOT/build}"
bash "$ROOT/scripts/setup.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cd "$BUILD_DIR"
JUNIT="$BUILD_DIR/ctest-junit.xml"
rm -f "$JUNIT"
rc=0
ctest --output-on-failure --timeout 900 -j"${VITSLIM_TEST_JOBS:-$(nproc)}" --output-junit "$JUNIT" "$@" || rc=$?
python3 "$ROOT/scripts/slowest_tests.py" "$JUNIT" --top 10
exit $rc
