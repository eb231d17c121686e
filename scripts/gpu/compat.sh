#!/usr/bin/env bash
# Compatibility checks that need the CUDA build of _C: `import detectron2._C` on its own
# in a fresh interpreter (the CUDA _C also links libc10_cuda/libtorch_cuda), and the
# tests of the compat branch. Run from the repo root after `scripts/gpu_validate.sh build`
# (or any in-place CUDA build); about 1-2 minutes. Logs go to $OUT.
set -uo pipefail
OUT=${OUT:-$PWD/gpu-logs}
mkdir -p "$OUT"
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
PY=${PYTHON:-python3}
(cd / && $PY -c 'import sys; import detectron2._C as C; assert "torch" in sys.modules; import torch; \
print("has_cuda", C.has_cuda(), "cuda", C.get_cuda_version(), "ops", hasattr(torch.ops.detectron2, "nms_rotated"))') \
  2>&1 | tee "$OUT/compat_import_C.txt"
$PY -m pytest -q -rs -p no:cacheprovider tests/test_import_C.py tests/test_exception_types.py \
  tests/modeling/test_init_order.py tests/data/test_transforms.py tests/solver/test_lr_scheduler.py \
  tests/config/test_lazy.py tests/test_public_api.py 2>&1 | tee "$OUT/compat_pytest.log" | tail -25
