#!/usr/bin/env bash
# Issue-13 GPU run: where the device idles in a batch-8 fp32 training step. Profiles our
# Mask R-CNN twice (without Python stacks for honest timings, with stacks to name the code
# behind each gap), analyses both traces with benchmarks/trace_gaps.py, and times the
# channels-last training step of both models. Reports and gzipped traces in $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/gaps-out}; mkdir -p "$OUT"; T0=$SECONDS
log() { echo "$1 $((SECONDS - T0))s" | tee -a "$OUT/summary.txt"; }
BUILD_LOG=$OUT/build.log source scripts/gpu/setup_device.sh || exit 1
log "build rc $BUILD_RC"
STEPS=${STEPS:-4}
for mode in plain stack; do
  flag=""; [ $mode = stack ] && flag=--stack
  timeout 120 python3 benchmarks/profile_mask_rcnn_train.py --batch 8 --steps $STEPS \
    --trace "$OUT/trace_$mode.json.gz" $flag > "$OUT/profile_$mode.md" 2>&1
  log "profile $mode rc $?"
  timeout 120 python3 benchmarks/trace_gaps.py "$OUT/trace_$mode.json.gz" --steps $STEPS > "$OUT/gaps_$mode.md" 2>&1
  log "gaps $mode rc $?"
done
timeout 90 python3 benchmarks/bench_mask_rcnn.py --device cuda --iters ${ITERS:-20} --train --batch 8 \
  --channels-last > "$OUT/channels_last.md" 2>&1
log "channels_last rc $?"
