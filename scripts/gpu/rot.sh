#!/usr/bin/env bash
# Rotated ops on the GPU machine (issue 12 item 1, issue 13 item 2, issue 15): the rotated
# CUDA tests, compute-sanitizer memcheck on them, and the three rotated benchmarks.
# Run from the repo root with _C already built for the GPU (sm_90); logs go to $OUT.
#   usage: OUT=/some/dir bash scripts/gpu/rot.sh [test] [memcheck] [bench]   (default: all three)
# Rough H200 times: test ~2.5 min, memcheck ~4-5 min, bench+profile ~4 min: split the
# stages over separate calls where one call is limited to 10 minutes.
set -uo pipefail
OUT=${OUT:-$PWD/gpu-logs-rot}
mkdir -p "$OUT"
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
TESTS="tests/layers/test_box_iou_rotated.py tests/layers/test_nms_rotated.py tests/layers/test_roi_align_rotated.py
  tests/layers/test_rotated_convention.py tests/layers/test_rotated_properties.py
  tests/structures/test_rotated_boxes.py tests/structures/test_rotated_consistency.py"
status=0
stage() { echo "== $1 ($(date -u +%T))"; }
want() { case " $STAGES " in *" $1 "*) return 0 ;; esac; return 1; }
STAGES="${*:-test memcheck bench}"

stage device
{ nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv
  $PY -c 'import torch, shapely; print("torch", torch.__version__, "cuda", torch.version.cuda, "shapely", shapely.__version__)'
  $PY -c 'import hypothesis; print("hypothesis", hypothesis.__version__)' 2>&1 | tail -1; } | tee "$OUT/device.txt"

if want test; then
stage "pytest (CPU and CUDA cases of the rotated tests)"
timeout 300 $PY -m pytest -q -rs -p no:cacheprovider $TESTS > "$OUT/pytest.log" 2>&1 || status=1
tail -15 "$OUT/pytest.log"
fi

if want memcheck; then
stage "compute-sanitizer memcheck (CUDA cases; 25 hypothesis examples a property)"
OPS_TESTS="tests/layers/test_box_iou_rotated.py tests/layers/test_nms_rotated.py tests/layers/test_roi_align_rotated.py
  tests/layers/test_rotated_convention.py tests/layers/test_rotated_properties.py"
D2_ROTATED_PROPERTY_EXAMPLES=25 timeout 420 compute-sanitizer --tool memcheck --target-processes all \
  --error-exitcode 99 $PY -m pytest -q -p no:cacheprovider -m cuda -k "not sweep_nms and not 10k" $OPS_TESTS \
  > "$OUT/memcheck.log" 2>&1 || status=1
tail -8 "$OUT/memcheck.log"
fi

if want bench; then
for b in nms_rotated box_iou_rotated roi_align_rotated; do
  stage "bench_$b"
  timeout 240 $PY benchmarks/bench_$b.py --device cuda > "$OUT/bench_$b.md" 2>&1 || status=1
  cat "$OUT/bench_$b.md"
done

stage "profile roi_align_rotated vs torchvision roi_align (fwd+bwd, 1024 rois)"
timeout 120 $PY scripts/gpu/profile_roi_align_rotated.py > "$OUT/profile_roi_align_rotated.txt" 2>&1 || status=1
tail -40 "$OUT/profile_roi_align_rotated.txt"
fi
echo "rot.sh exit status $status"
exit $status
