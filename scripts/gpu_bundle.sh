#!/usr/bin/env bash
# scripts/gpu_bundle.sh: the Debian packages vitslim needs to build and run on a machine that has
# none of them and no network (the GPU machine of docs/gpu.md), fetched here with
# `apt-get download` into a git-ignored folder (default gpu-bundle/, at most 48 MiB):
#   - development packages, taken alone (their own dependencies are toolchains): headers, CMake
#     configs and .so links of HDF5 (C, C++), Boost.Program_options, Open MPI, libjpeg-turbo,
#     libpng, zlib, nlohmann-json, GoogleTest;
#   - the runtime libraries, with every Depends they pull in except what any Debian or Ubuntu
#     system has (Priority required/important, the C and C++ runtimes); openmpi-bin for mpiexec.
# scripts/bundle_build.sh unpacks them into a prefix there and builds against them. The packages
# are bookworm's (glibc 2.36): they run on newer systems too (Ubuntu 24.04).
# Usage: scripts/gpu_bundle.sh [OUT_DIR]   (apt-get update first when the lists are old)
#        scripts/gpu_bundle.sh --list      the packages and their download sizes; nothing fetched
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LIST=0
[[ "${1:-}" == --list ]] && LIST=1 && shift
OUT="${1:-$ROOT/gpu-bundle}"
LIMIT_MIB=48
DEV=(libhdf5-dev libboost1.74-dev libboost-program-options1.74-dev libopenmpi-dev libjpeg62-turbo-dev libpng-dev
  zlib1g-dev nlohmann-json3-dev libgtest-dev libgmock-dev googletest)
RUNTIME=(libhdf5-103-1 libhdf5-hl-100 libhdf5-cpp-103-1 libboost-program-options1.74.0 libopenmpi3 openmpi-bin
  openmpi-common libjpeg62-turbo libpng16-16 zlib1g)
# Present on every Debian/Ubuntu (or not needed on one node: ssh starts remote ranks).
SKIP=(libc6 libgcc-s1 libstdc++6 debconf dpkg perl-base libcrypt1 gcc-12-base openssh-client adduser lsb-base
  init-system-helpers sysvinit-utils libhwloc-plugins)
log() { echo "[gpu_bundle] $*"; }

command -v apt-get >/dev/null || { log "FAIL: apt-get not found (run this on Debian, where the packages come from)"; exit 1; }
[[ "$(dpkg --print-architecture)" == amd64 ]] || { log "FAIL: this machine is $(dpkg --print-architecture); the GPU machine is amd64"; exit 1; }

# The runtime closure: Depends (first alternative), recursively, minus SKIP and priority
# required/important packages that are not asked for by name.
closure() {
  python3 - "${SKIP[*]}" "$@" <<'PY'
import subprocess, sys
skip = set(sys.argv[1].split())
roots = sys.argv[2:]
def fields(name):
    text = subprocess.run(["apt-cache", "show", "--no-all-versions", name], capture_output=True, text=True).stdout
    out = {}
    for line in text.splitlines():
        if line and not line[0].isspace() and ":" in line:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out
seen, todo = [], list(roots)
while todo:
    name = todo.pop()
    if name in seen or name in skip:
        continue
    f = fields(name)
    if not f:  # a virtual package: its providers are listed as alternatives
        continue
    if name not in roots and f.get("Priority") in ("required", "important"):
        continue
    seen.append(name)
    for alternative in filter(None, (a.strip() for a in f.get("Depends", "").split(","))):
        todo.append(alternative.split("|")[0].split()[0].split(":")[0])
print("\n".join(sorted(seen)))
PY
}

mapfile -t packages < <({ printf '%s\n' "${DEV[@]}"; closure "${RUNTIME[@]}"; } | sort -u)
if ((LIST)); then
  apt-cache show --no-all-versions "${packages[@]}" | awk '/^Package:/{p=$2} /^Size:/{printf "%-40s %8.2f MiB\n", p, $2/1048576; t+=$2}
    END{printf "total %d packages, %.1f MiB\n", NR ? n : 0, t/1048576}' n="${#packages[@]}"
  exit 0
fi
mkdir -p "$OUT"
rm -f "$OUT"/*.deb
log "downloading ${#packages[@]} packages into $OUT"
(cd "$OUT" && apt-get download -qq -o APT::Sandbox::User=root "${packages[@]}") || { log "FAIL: apt-get download (apt-get update first?)"; exit 1; }
printf '%s\n' "${packages[@]}" >"$OUT/packages.txt"
{
  echo "bookworm amd64 packages for scripts/bundle_build.sh, made $(date -u +%Y-%m-%dT%H:%M:%SZ) by scripts/gpu_bundle.sh"
  (cd "$OUT" && sha256sum -- *.deb)
} >"$OUT/MANIFEST"
bytes=$(du -cb "$OUT"/*.deb | tail -n 1 | cut -f1)
mib=$(((bytes + 1048575) / 1048576))
log "$(ls "$OUT"/*.deb | wc -l) packages, $mib MiB in $OUT"
((mib <= LIMIT_MIB)) || { log "FAIL: $mib MiB is over the $LIMIT_MIB MiB that can travel to the GPU machine"; exit 1; }
