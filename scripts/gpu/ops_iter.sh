#!/usr/bin/env bash
# GPU run for issue 13's op targets: build _C for sm_90, the kernel breakdown of
# deform_conv forward and nms_rotated (profile_ops.py), the op benchmarks, the CUDA tests
# of the touched ops and compute-sanitizer memcheck over them. Run from the repo root on
# the device (wheels of the pure-Python dependencies in .whl/); logs and a tarball in $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/ops-out}; R=$OUT/r; mkdir -p "$R"; T0=$SECONDS
log() { echo "$1 $((SECONDS - T0))s" | tee -a "$R/summary.txt"; }
{ nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv
  python3 -c 'import torch, torchvision; print(torch.__version__, torch.version.cuda, torchvision.__version__)'
  git log --oneline -1; git status --short; } > "$R/device.txt" 2>&1
BUILD_LOG=$R/build.log source scripts/gpu/setup_device.sh || exit 1
log "build rc $BUILD_RC"; ls -l src/detectron2/_C*.so >> "$R/summary.txt"
B=benchmarks
timeout 90 python3 $B/profile_ops.py --device cuda --iters 20 > "$R/profile_ops.md" 2>&1; log "profile_ops rc $?"
for b in deform_conv nms_rotated roi_align_rotated; do
  echo "## $b"; timeout 60 python3 $B/bench_$b.py --device cuda; done > "$R/ops.md" 2>&1; log "ops"
timeout 200 python3 -m pytest -q -rfE -p no:cacheprovider -m cuda tests/layers/test_deform_conv.py \
  tests/layers/test_nms_rotated.py tests/layers/test_rotated_convention.py > "$R/pytest_ops.log" 2>&1
log "pytest ops rc $?"; tail -2 "$R/pytest_ops.log" >> "$R/summary.txt"
D2_ROTATED_PROPERTY_EXAMPLES=25 timeout ${MEMCHECK_S:-150} compute-sanitizer --tool memcheck --error-exitcode 99 \
  python3 -m pytest -q -p no:cacheprovider -m cuda tests/layers/test_deform_conv.py tests/layers/test_nms_rotated.py \
  > "$R/memcheck.log" 2>&1
log "memcheck rc $?"; tail -3 "$R/memcheck.log" >> "$R/summary.txt"
cd "$OUT" && tar czf ops.tgz r && cp r/summary.txt .
