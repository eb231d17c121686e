#!/usr/bin/env bash
# Issue 15 on the GPU: the bad-input cases of ops and structures on CUDA tensors (the
# `device` fixture's cuda rows), plus the checkpoint/config safety tests. ~1 min once _C
# is built; builds _C in place first (sm_90, ~3-5 min on 16 cores) if it cannot be imported
# (only batched_nms_rotated needs it). Run from the repository root; results under $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export PYTHONPATH=src
if ! python -c "import detectron2._C" 2>/dev/null; then
  FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16 PYTHON=python bash scripts/build_inplace.sh > "$OUT/build.txt" 2>&1
fi
python -m pytest -q -rs -p no:cacheprovider \
  tests/layers/test_nms_bad_inputs.py tests/structures/test_bad_inputs.py \
  tests/checkpoint/test_checkpoint_safety.py tests/config/test_config_safety.py \
  2>&1 | tee "$OUT/safe_bad_inputs.txt"
exit "${PIPESTATUS[0]}"
