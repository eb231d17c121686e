#!/usr/bin/env bash
# Build detectron2._C in place (src/detectron2/_C*.so) for tests and development.
# With nvcc available the CUDA kernels are compiled too (for TORCH_CUDA_ARCH_LIST, default
# 9.0 only: enough to compile every .cu file in CI); FORCE_CUDA=0 gives a C++-only build.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${FORCE_CUDA:-}" ]; then
  if [ -x "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" ]; then export FORCE_CUDA=1; else export FORCE_CUDA=0; fi
fi
if [ "$FORCE_CUDA" = 1 ]; then
  export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda} TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
  echo "building _C with CUDA (nvcc at $CUDA_HOME, archs $TORCH_CUDA_ARCH_LIST)"
else
  echo "building _C for CPU only (FORCE_CUDA=0 or no nvcc found)"
fi
MAX_JOBS=${MAX_JOBS:-$(nproc)} ${PYTHON:-python3} setup.py -q build_ext --inplace
