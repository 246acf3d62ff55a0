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
# Waits until a file matching the glob $2 exists or process $1 has ended, whichever comes first;
# true when the file exists. It counts no time: how fast the run gets there never decides a test
# (ctest's TIMEOUT is the only bound).
wait_for_file() {
  local pid="$1" glob="$2"
  until compgen -G "$glob" >/dev/null; do
    kill -0 "$pid" 2>/dev/null || { compgen -G "$glob" >/dev/null; return; }
    sleep 0.01
  done
}
