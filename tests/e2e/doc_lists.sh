#!/usr/bin/env bash
# The lists in the docs match the tree and the binaries (scripts/check_doc_lists.py): data/README.md
# names every header of data/, README.md's Layout every folder and docs/*.md, its job table every
# job of `vitslim --help`, launcher/README.md every job vitslim-launch accepts. Then the checker
# itself must catch a drift: a stand-in copy of the docs with a header missing from its README.
# Env from ctest: VITSLIM_BIN, VITSLIM_SCRIPTS.
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="$VITSLIM_BIN"
LAUNCH="$(dirname "$BIN")/vitslim-launch"
CHECK=(python3 "$VITSLIM_SCRIPTS/check_doc_lists.py" --binary "$BIN" --launcher "$LAUNCH")
failures=0
if out=$("${CHECK[@]}" --root "$ROOT"); then
  echo "ok   the docs' lists match: $out"
else
  echo "FAIL the docs' lists drifted:"; echo "$out"; failures=$((failures + 1))
fi
# A drifted copy: a new header in data/ that its README does not name.
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
git -C "$ROOT" ls-files -z | (cd "$ROOT" && xargs -0 cp --parents -t "$WORK" 2>/dev/null)
git -C "$WORK" init -q && git -C "$WORK" add -A >/dev/null 2>&1
printf '#pragma once\n' >"$WORK/data/new_format.h"
if out=$("${CHECK[@]}" --root "$WORK"); then
  echo "FAIL a header missing from data/README.md was not caught"; failures=$((failures + 1))
elif grep -q "data/README.md does not name new_format.h" <<<"$out"; then
  echo "ok   drift caught: $(head -1 <<<"$out")"
else
  echo "FAIL unclear report:"; echo "$out"; failures=$((failures + 1))
fi
echo "$((2 - failures)) passed, $failures failed"
[[ $failures -eq 0 ]]
