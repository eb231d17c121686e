#!/usr/bin/env bash
# Issue-13 GPU run: the RPN's anchor labelling on a side stream beside the backbone
# (modeling/ground_truth_stream.py). Its CUDA tests, then the batch-8 fp32 training step
# with and without it, alternated (ROUNDS times, ITERS timed steps each), then the idle
# gaps of a profiled step (benchmarks/trace_gaps.py). Reports in $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/side-out}; mkdir -p "$OUT"; T0=$SECONDS
log() { echo "$1 $((SECONDS - T0))s" | tee -a "$OUT/summary.txt"; }
BUILD_LOG=$OUT/build.log source scripts/gpu/setup_device.sh || exit 1
log "build rc $BUILD_RC"
timeout 150 python3 -m pytest -q -rfE -p no:cacheprovider -m cuda tests/modeling/test_ground_truth_stream.py \
  tests/modeling/test_rcnn.py tests/modeling/test_rpn.py tests/modeling/test_rpn_select_batched.py \
  tests/modeling/test_batched_matching.py > "$OUT/pytest_side_stream.log" 2>&1
log "pytest rc $?"; tail -2 "$OUT/pytest_side_stream.log" >> "$OUT/summary.txt"
for round in $(seq "${ROUNDS:-2}"); do
  for flag in "" --plain-stream; do
    timeout 80 python3 benchmarks/bench_mask_rcnn.py --device cuda --iters "${ITERS:-30}" --train --batch 8 $flag \
      2>&1 | grep -v "^|---"
  done
done > "$OUT/side_stream_ab.md"; log "a/b"
timeout 90 python3 benchmarks/profile_mask_rcnn_train.py --batch 8 --steps 4 --trace /tmp/trace.json.gz \
  > "$OUT/profile.md" 2>&1 && python3 benchmarks/trace_gaps.py /tmp/trace.json.gz --steps 4 > "$OUT/gaps.md" 2>&1
log "gaps rc $?"
