#!/usr/bin/env bash
# The layer check the build runs (scripts/check_layers.py) refuses an include that points up the
# layers and accepts one that points down. Env from ctest: VITSLIM_SCRIPTS.
set -u
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/low" "$WORK/high"
printf '#include "low/a.h"\n' >"$WORK/high/b.cpp"
printf '#pragma once\n' >"$WORK/low/a.h"
failures=0
check() { python3 "$VITSLIM_SCRIPTS/check_layers.py" --root "$WORK" --layer=low:low: --layer=high:high:low; }
if check 2>"$WORK/err"; then echo "ok   downward include accepted"; else echo "FAIL downward include refused"; cat "$WORK/err"; failures=$((failures + 1)); fi
printf '#include "high/b.h"\n' >>"$WORK/low/a.h"
if check 2>"$WORK/err"; then
  echo "FAIL upward include accepted"; failures=$((failures + 1))
elif grep -q "low/a.h:2: layer 'low' includes 'high'" "$WORK/err"; then
  echo "ok   upward include refused: $(cat "$WORK/err")"
else
  echo "FAIL unclear message: $(cat "$WORK/err")"; failures=$((failures + 1))
fi
echo "$((2 - failures)) passed, $failures failed"
[[ $failures -eq 0 ]]
