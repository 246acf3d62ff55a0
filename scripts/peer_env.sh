#!/usr/bin/env bash
# scripts/peer_env.sh: the Python environment of the data-loading peer that `bench_data.py`
# compares vitslim with: torch 2.14.1 + torchvision 0.29.1 (a matching pair from the machine's
# local package indexes), Pillow-SIMD (built from its PyPI source against Debian's libjpeg-turbo
# and zlib) and timm (its transforms_factory builds the DeiT train/eval transforms). It lives in
# .venv-peer (ignored by git), apart from the project's .venv, because Pillow-SIMD replaces
# Pillow and torchvision needs the newer torch. Idempotent; prints the environment's python.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VITSLIM_PEER_VENV:-$ROOT/.venv-peer}"
TORCH_VERSION="2.14.1"
TORCHVISION_VERSION="0.29.1"
PILLOW_SIMD_VERSION="12.1.1.post0"
TIMM_VERSION="1.0.31"
log() { echo "[peer_env] $*" >&2; }

check() {
  "$VENV/bin/python" - <<EOF 2>/dev/null
import importlib.metadata as m, sys
ok = (m.version("torch").startswith("$TORCH_VERSION") and m.version("torchvision").startswith("$TORCHVISION_VERSION")
      and m.version("pillow-simd") == "$PILLOW_SIMD_VERSION" and m.version("timm") == "$TIMM_VERSION")
import PIL.Image, torchvision, timm.data  # noqa: F401  (imports must work, not just be installed)
sys.exit(0 if ok else 1)
EOF
}

if [[ -x "$VENV/bin/python" ]] && check; then
  echo "$VENV/bin/python"
  exit 0
fi
read -r -a INDEXES <<<"$(python3 -m pip config get global.extra-index-url 2>/dev/null || true)"
LOCAL=()
for index in "${INDEXES[@]}"; do LOCAL+=(--extra-index-url "$index"); done
log "creating $VENV (torch $TORCH_VERSION, torchvision $TORCHVISION_VERSION, Pillow-SIMD $PILLOW_SIMD_VERSION)"
rm -rf "$VENV"
python3 -m venv "$VENV"
P=("$VENV/bin/pip" install -q --disable-pip-version-check "${LOCAL[@]}")
"${P[@]}" filelock typing-extensions setuptools sympy networkx jinja2 fsspec numpy pyyaml safetensors huggingface_hub \
  'cuda-toolkit[cublas,cudart,cufft,cufile,cupti,curand,cusolver,cusparse,nvjitlink,nvrtc,nvtx]' \
  nvidia-cudnn-cu13 nvidia-cusparselt-cu13 nvidia-nccl-cu13 nvidia-nvshmem-cu13 >&2
"${P[@]}" --no-deps "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION" "timm==$TIMM_VERSION" >&2
# Pillow-SIMD is source-only on PyPI; it compiles against Debian's libjpeg62-turbo-dev and zlib.
"${P[@]}" --no-binary pillow-simd "pillow-simd==$PILLOW_SIMD_VERSION" >&2
check || { log "FAIL: the peer environment does not import"; exit 1; }
echo "$VENV/bin/python"
