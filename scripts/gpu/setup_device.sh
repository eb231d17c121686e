#!/usr/bin/env bash
# Prepares the lent GPU machine from the repo root: the pure-Python dependencies from the
# wheels in .whl/ into /tmp/site, then _C built in place for sm_90 (release flags).
# Source it: it exports PYTHONPATH and sets BUILD_RC.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || return 1
export PYTHONPATH=$PWD/src:/tmp/site PYTHONUNBUFFERED=1 CC=/usr/bin/gcc CXX=/usr/bin/g++
FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16 python3 setup.py -q build_ext --inplace > "${BUILD_LOG:-/tmp/build.log}" 2>&1
BUILD_RC=$?
