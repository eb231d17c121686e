#!/usr/bin/env bash
# Issue 15 on the GPU: the bad-input cases of ops and structures on CUDA tensors (the
# `device` fixture's cuda rows), plus the checkpoint/config safety tests. ~1-2 min.
# Run from the repository root; results under $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export PYTHONPATH=src
python -m pytest -q -rs -p no:cacheprovider \
  tests/layers/test_nms_bad_inputs.py tests/structures/test_bad_inputs.py \
  tests/checkpoint/test_checkpoint_safety.py tests/config/test_config_safety.py \
  2>&1 | tee "$OUT/safe_bad_inputs.txt"
exit "${PIPESTATUS[0]}"
