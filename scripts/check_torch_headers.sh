#!/usr/bin/env bash
# scripts/check_torch_headers.sh: do the sources compile against the headers of another LibTorch
# (the GPU machine's torch 2.11, say) than the pinned ones? Every translation unit of an existing
# CUDA build (scripts/check_cuda_build.sh; its compile_commands.json, with -Werror) is compiled
# again with -fsyntax-only, with that torch's include folders in place of the build's and no
# precompiled header. No linking: the libraries of the other torch need not be here, only its
# wheel (or an unpacked torch/ folder). By hand (about 10 minutes on 2 cores), not in CI.
# Usage: scripts/check_torch_headers.sh TORCH_WHEEL_OR_DIR [BUILD_DIR (default build-cuda/build)]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SOURCE="${1:?usage: scripts/check_torch_headers.sh TORCH_WHEEL_OR_DIR [BUILD_DIR]}"
BUILD="${2:-$ROOT/build-cuda/build}"
OUT="$ROOT/build-torch-headers"
JOBS="${VITSLIM_JOBS:-$(nproc)}"
log() { echo "[check_torch_headers] $*"; }
[[ -f "$BUILD/compile_commands.json" ]] || { log "FAIL: no $BUILD/compile_commands.json (run scripts/check_cuda_build.sh)"; exit 1; }
if [[ -f "$SOURCE" ]]; then  # a wheel: unpack torch/include and torch/version.py once
  mkdir -p "$OUT"
  python3 - "$SOURCE" "$OUT" <<'PY'
import os, sys, zipfile
wheel, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.startswith("torch/include/") or n == "torch/version.py"]
    if not os.path.exists(os.path.join(out, "torch", "version.py")):
        z.extractall(out, names)
PY
  TORCH="$OUT/torch"
else
  TORCH="$SOURCE"
fi
[[ -f "$TORCH/include/torch/csrc/api/include/torch/torch.h" ]] || { log "FAIL: no LibTorch headers (include/torch/csrc/api/include/torch/torch.h) in $TORCH"; exit 1; }
VERSION=$(python3 -c "ns = {}; exec(open('$TORCH/version.py').read(), ns); print(ns['__version__'])" 2>/dev/null || echo "?")
log "torch $VERSION headers from $TORCH against the commands of $BUILD"
python3 - "$BUILD/compile_commands.json" "$TORCH/include" "$OUT/commands.txt" <<'PY'
import json, re, shlex, sys
commands, include, out = sys.argv[1:]
lines = []
for entry in json.load(open(commands)):
    args = entry.get("arguments") or shlex.split(entry["command"])
    if any(a.endswith(".hxx.cxx") for a in args) or entry["file"].endswith(".cu"):
        continue  # the precompiled header itself; CUDA sources
    new, skip = [], 0
    for i, a in enumerate(args):
        if skip:
            skip -= 1
            continue
        if a in ("-include", "-o", "-MF", "-MT", "-MQ") or (a == "-x"):
            if a == "-include" and "cmake_pch" not in args[i + 1]:
                new += [a, args[i + 1]]
            skip = 1
            continue
        if a in ("-Winvalid-pch", "-MD", "-MMD", "-c"):
            continue
        new.append(re.sub(r"^(.*?)/torch/include", include, a) if "/torch/include" in a else a)
    lines.append(entry["directory"] + "\t" + shlex.join(new + ["-fsyntax-only"]))
open(out, "w").write("\n".join(lines) + "\n")
print(f"{len(lines)} translation units")
PY
started=$SECONDS
failed=0
while IFS=$'\t' read -r dir cmd; do
  printf '%s\0%s\0' "$dir" "$cmd"
done <"$OUT/commands.txt" | xargs -0 -n 2 -P "$JOBS" bash -c 'cd "$0" && eval "$1" >/dev/null 2>"$(mktemp -p '"$OUT"' err.XXXXXX)"' ||
  failed=1
errors=$(cat "$OUT"/err.* 2>/dev/null | grep -E "error" | head -n 20 || true)
rm -f "$OUT"/err.*
if [[ $failed -ne 0 || -n "$errors" ]]; then
  echo "$errors"
  log "FAIL: the sources do not compile against torch $VERSION ($((SECONDS - started)) s)"
  exit 1
fi
log "ok: every translation unit compiles against torch $VERSION with -Werror ($((SECONDS - started)) s)"
