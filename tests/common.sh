# Sourced by the e2e/ and mpi/ test scripts: strict mode, a scratch directory removed on exit
# (the script runs inside it; dataset index caches go there too), and short names for what ctest
# passes in the environment.
set -euo pipefail
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
export VITSLIM_CACHE_DIR="$WORK/index-cache"
BIN="$VITSLIM_BIN"
PY="$VITSLIM_PYTHON"
