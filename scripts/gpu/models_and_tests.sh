#!/usr/bin/env bash
# Issue-13 GPU run of the models (after ops_iter.sh, or with BUILD=1 it prepares the machine
# itself): the stage profile of a batch-8 fp32 training step (PROFILE=1), Mask R-CNN R50-FPN
# vs torchvision (training b8/b16 fp32/AMP, inference b1; ITERS timed steps each), the
# batched anchor/proposal labelling vs the per-image loop (bench_matching.py), then
# every CUDA test of the suite with the time that is left (END seconds in all, default 330).
# Logs and a tarball in $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/ops-out}; R=$OUT/m; mkdir -p "$R"; T0=$SECONDS; END=${END:-330}
left() { echo $((END - SECONDS + T0)); }
log() { echo "$1 $((SECONDS - T0))s" | tee -a "$R/summary.txt"; }
if [ "${BUILD:-0}" = 1 ]; then
  BUILD_LOG=$R/build.log source scripts/gpu/setup_device.sh || exit 1
  log "build rc $BUILD_RC"
fi
export PYTHONPATH=$PWD/src:/tmp/site PYTHONUNBUFFERED=1
if [ "${PROFILE:-0}" = 1 ]; then
  timeout 60 python3 benchmarks/profile_mask_rcnn_train.py --device cuda --batch 8 --peer > "$R/profile_b8_fp32.md" 2>&1
  log "profile rc $?"
fi
for a in "--train --batch 8" "--train --batch 8 --amp" "--train --batch 16" "--train --batch 16 --amp" \
  "--batch 1" "--batch 1 --amp"; do
  timeout 60 python3 benchmarks/bench_mask_rcnn.py --device cuda --iters ${ITERS:-10} $a 2>&1 | grep -v "^|---"
done > "$R/mask_rcnn.md"; log "mask_rcnn"
timeout 90 python3 benchmarks/bench_matching.py --device cuda > "$R/matching.md" 2>&1; log "matching rc $?"
# (tests/distribution and tests/hpc need rattler/conda-pack, not installed here: their
# collection errors are reported, the CUDA tests elsewhere still run)
timeout $(( $(left) - 15 )) python3 -m pytest -q -rfE -p no:cacheprovider -m cuda --continue-on-collection-errors tests \
  --deselect tests/layers/test_deform_conv.py --deselect tests/layers/test_nms_rotated.py \
  > "$R/pytest_cuda_all.log" 2>&1
log "pytest cuda (all but the op files ops_iter ran) rc $?"; tail -3 "$R/pytest_cuda_all.log" >> "$R/summary.txt"
cd "$OUT" && tar czf models.tgz m && cp m/summary.txt models_summary.txt
