#!/usr/bin/env bash
# scripts/check_bundle_chroot.sh: proves, without a GPU, that the bundle of scripts/gpu_bundle.sh
# is enough to build vitslim on a machine that has none of its development packages. A bare
# Debian bookworm made by debootstrap (minbase + a compiler, CMake, Ninja, python3 and nothing
# else) gets the working tree, the bundle, the pinned CPU torch wheel, the Python-made test
# inputs and the two data packages the unit tests read (Fashion-MNIST, MATE's photos); inside it
# scripts/bundle_build.sh --unit-tests builds the CPU variant against the bundle and runs
# vitslim_unit. Slow (debootstrap the first time, a full build on this machine's
# cores): a script to run by hand, not part of CI. Needs root and Debian's registry.
# Usage: scripts/check_bundle_chroot.sh [CHROOT_DIR]   (default /var/tmp/vitslim-bookworm; kept
#        between runs, so the second run skips debootstrap)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHROOT="${1:-/var/tmp/vitslim-bookworm}"
MIRROR="${VITSLIM_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
WHEEL="${VITSLIM_TORCH_WHEEL:-}"
TORCH_VERSION="2.13.0"
# What the chroot must not have: the development packages the bundle replaces.
ABSENT=(libhdf5-dev libboost-program-options-dev libboost1.74-dev libopenmpi-dev openmpi-bin libjpeg62-turbo-dev
  libpng-dev nlohmann-json3-dev libgtest-dev zlib1g-dev)
log() { echo "[check_bundle_chroot] $*"; }
fail() {
  echo "[check_bundle_chroot] FAIL: $*"
  exit 1
}
[[ $(id -u) -eq 0 ]] || fail "needs root (debootstrap, chroot)"
command -v debootstrap >/dev/null || fail "debootstrap not found (apt-get install debootstrap)"
[[ -f "$ROOT/gpu-bundle/MANIFEST" ]] || fail "no gpu-bundle/ (run scripts/gpu_bundle.sh first)"
[[ -d "$ROOT/build/test-data" ]] || fail "no build/test-data (run scripts/setup.sh and the tests' fixtures first)"
if [[ -z "$WHEEL" ]]; then  # the pinned wheel, from pip's cache or configured indexes, never unpinned
  WHEEL_DIR="$(mktemp -d)"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 -d "$WHEEL_DIR" "torch==$TORCH_VERSION" ||
    fail "cannot get torch==$TORCH_VERSION (set VITSLIM_TORCH_WHEEL=/path/to/the.whl)"
  WHEEL="$(ls "$WHEEL_DIR"/torch-*.whl)"
fi

if [[ ! -x "$CHROOT/usr/bin/cmake" ]]; then
  log "debootstrap bookworm into $CHROOT"
  debootstrap --variant=minbase --include=g++,cmake,ninja-build,python3,python3-venv bookworm "$CHROOT" "$MIRROR" \
    >"$CHROOT.debootstrap.log" 2>&1 || fail "debootstrap (log: $CHROOT.debootstrap.log)"
fi
for p in "${ABSENT[@]}"; do
  if chroot "$CHROOT" dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    fail "$p is installed in $CHROOT: not a bare machine"
  fi
done

mount -t proc proc "$CHROOT/proc"
trap 'umount "$CHROOT/proc" 2>/dev/null || true' EXIT
rm -rf "$CHROOT/src/vitslim" "$CHROOT/src/wheels" "$CHROOT/src/test-data"  # src/work: the build, kept
mkdir -p "$CHROOT/src/vitslim" "$CHROOT/src/wheels"
(cd "$ROOT" && git ls-files -co --exclude-standard -z | tar --null -T - -cf -) | tar -C "$CHROOT/src/vitslim" -xf -
cp -r "$ROOT/gpu-bundle" "$CHROOT/src/vitslim/gpu-bundle"
cp -r "$ROOT/build/test-data" "$CHROOT/src/test-data"
cp "$WHEEL" "$CHROOT/src/wheels/"
# Data, not development packages: two unit tests read Debian's Fashion-MNIST and a photo.
for data in /usr/share/datasets/fashion-mnist /usr/share/backgrounds/mate; do
  [[ -d "$data" ]] || fail "$data missing here (scripts/setup.sh installs it)"
  mkdir -p "$CHROOT$(dirname "$data")"
  rm -rf "${CHROOT:?}$data"
  cp -r "$data" "$CHROOT$data"
done
log "in the chroot: a venv with $(basename "$WHEEL"), then scripts/bundle_build.sh --unit-tests"
started=$SECONDS
chroot "$CHROOT" /bin/bash -euo pipefail -c '
  [[ -x /venv/bin/python ]] || python3 -m venv /venv
  /venv/bin/pip install -q --no-index --no-deps /src/wheels/torch-*.whl
  cd /src/vitslim
  VITSLIM_JOBS='"$(nproc)"' bash scripts/bundle_build.sh --unit-tests --python /venv/bin/python \
    --test-data /src/test-data --work /src/work
' || fail "the bundle build in the chroot (logs under $CHROOT/src/work)"
log "ok: built against the bundle and passed the unit tests in a bare bookworm in $((SECONDS - started)) s"
