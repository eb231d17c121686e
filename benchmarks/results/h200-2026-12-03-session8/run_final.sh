#!/usr/bin/env bash
# Session 8, final GPU run (issue 13's tables from one run): build _C for sm_90, the op
# benchmarks (deform_conv, nms_rotated, box_iou_rotated, roi_align_rotated), the kernel
# profile of deform_conv / nms_rotated, Mask R-CNN R50-FPN vs torchvision (train b8/b16
# fp32/AMP, inference b1 fp32/AMP), then the CUDA tests of layers/structures/modeling with
# the time left (END seconds in all). Run from the repo root on the device: results in $OUT/r.
set -uo pipefail
R=$OUT/r; mkdir -p "$R"; T0=$SECONDS; END=${END:-560}
left() { echo $((END - SECONDS + T0)); }
log() { echo "$1 $((SECONDS - T0))s" | tee -a "$R/summary.txt"; }
{ nvidia-smi --query-gpu=name,driver_version,compute_cap,clocks.max.sm --format=csv
  python3 -c 'import torch, torchvision; print(torch.__version__, torch.version.cuda, torchvision.__version__)'; } > "$R/device.txt" 2>&1
BUILD_LOG=$R/build.log source scripts/gpu/setup_device.sh; log "build rc $BUILD_RC"; ls -l src/detectron2/_C*.so >> "$R/summary.txt"
B=benchmarks
for b in deform_conv nms_rotated box_iou_rotated roi_align_rotated; do
  echo "## $b"; timeout 75 python3 $B/bench_$b.py --device cuda; done > "$R/ops.md" 2>&1; log "ops"
timeout 60 python3 $B/profile_ops.py --device cuda --iters 20 > "$R/profile_ops.md" 2>&1; log "profile rc $?"
for a in "--train --batch 8" "--train --batch 8 --amp" "--train --batch 16" "--train --batch 16 --amp" "--batch 1" "--batch 1 --amp"; do
  timeout 60 python3 $B/bench_mask_rcnn.py --device cuda --iters 10 $a 2>&1 | grep -v "^|---"; done > "$R/mask_rcnn.md"; log "mask_rcnn"
timeout $(( $(left) - 10 )) python3 -m pytest -q -rfE -p no:cacheprovider -m cuda ${PYTEST_DIRS:-tests/layers tests/structures tests/modeling} \
  > "$R/pytest_cuda_core.log" 2>&1; log "pytest core rc $?"; tail -2 "$R/pytest_cuda_core.log" >> "$R/summary.txt"
