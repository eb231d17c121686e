#!/usr/bin/env bash
# Build detectron2._C in place (src/detectron2/_C*.so) and install detectron2 in editable
# mode (`pip install --no-build-isolation -e .`: console scripts, `import detectron2`).
# The second step reuses the objects of the first (setup.py gives both one build folder).
#
# CUDA: FORCE_CUDA=1 compiles the kernels or fails with one line saying why; FORCE_CUDA=0
# builds the C++ ops only; unset, the kernels are compiled when an nvcc is found (for
# TORCH_CUDA_ARCH_LIST, default 9.0 only) and everything CUDA needs is there, else C++ only
# with one line saying why.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
nvcc_home=""
for home in "${CUDA_HOME:-}" /usr/local/cuda; do
  if [ -n "$home" ] && [ -x "$home/bin/nvcc" ]; then nvcc_home=$home; break; fi
done
if [ "${FORCE_CUDA:-}" != 0 ] && [ -n "$nvcc_home" ]; then
  export CUDA_HOME=$nvcc_home TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
  echo "building _C: CUDA if usable (nvcc at $CUDA_HOME, archs $TORCH_CUDA_ARCH_LIST), MAX_JOBS=${MAX_JOBS:-$(nproc)}"
elif [ "${FORCE_CUDA:-}" = 1 ]; then
  echo "building _C: FORCE_CUDA=1 (nvcc from CUDA_HOME or PATH)"
else
  echo "building _C for CPU only (FORCE_CUDA=0 or no nvcc at \$CUDA_HOME or /usr/local/cuda)"
fi
export MAX_JOBS=${MAX_JOBS:-$(nproc)}
# ninja prints one [done/total] line per compiled file: the build's progress.
"$PY" setup.py -q build_ext --inplace
echo "installing detectron2 (editable) into $("$PY" -c 'import sys; print(sys.prefix)')"
"$PY" -m pip install --disable-pip-version-check -q --no-build-isolation --no-deps -e .
