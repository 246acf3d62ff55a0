#!/usr/bin/env bash
# The layer check the build runs (scripts/check_layers.py) refuses an include that points up the
# layers and accepts one that points down; inside a layer, it refuses folders that include each
# other. Env from ctest: VITSLIM_SCRIPTS.
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
# Two folders of one layer: one way is fine, both ways is a loop.
mkdir -p "$WORK/low/x" "$WORK/low/y"
printf '#pragma once\n' >"$WORK/low/a.h"
printf '#include "low/y/b.h"\n' >"$WORK/low/x/a.h"
printf '#pragma once\n' >"$WORK/low/y/b.h"
if check 2>"$WORK/err"; then echo "ok   one-way folder include accepted"; else echo "FAIL one-way folder include refused: $(cat "$WORK/err")"; failures=$((failures + 1)); fi
printf '#include "low/x/a.h"\n' >>"$WORK/low/y/b.h"
if check 2>"$WORK/err"; then
  echo "FAIL folder loop accepted"; failures=$((failures + 1))
elif grep -q "folder 'low/y' includes 'low/x', which includes 'low/y' back" "$WORK/err"; then
  echo "ok   folder loop refused: $(head -1 "$WORK/err")"
else
  echo "FAIL unclear message: $(cat "$WORK/err")"; failures=$((failures + 1))
fi
echo "$((4 - failures)) passed, $failures failed"
[[ $failures -eq 0 ]]
