#!/usr/bin/env bash
# Issue-13 GPU run: the RPN's anchor labelling on a side stream beside the backbone
# (modeling/ground_truth_stream.py). Its CUDA tests, then the batch-8 fp32 training step
# with and without it, alternated (ROUNDS times, ITERS timed steps each), then the idle
# gaps of a profiled step (benchmarks/trace_gaps.py; GAPS=0 skips), the other training and
# inference cases of bench_mask_rcnn (TABLE=1), then the CUDA tests of the suite in
# the time left (END seconds in all). Reports in $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/side-out}; mkdir -p "$OUT"; T0=$SECONDS
log() { echo "$1 $((SECONDS - T0))s" | tee -a "$OUT/summary.txt"; }
BUILD_LOG=$OUT/build.log source scripts/gpu/setup_device.sh || exit 1
log "build rc $BUILD_RC"
# How long a side-stream host sync takes while the current stream is busy (cold and warm).
timeout 60 python3 - > "$OUT/overlap_probe.txt" 2>&1 <<'PY'
import time, torch
from detectron2.modeling.ground_truth_stream import beside_backbone, ground_truth_ready
gt = torch.arange(10.0, device="cuda"); torch.cuda.synchronize()
for label in ("cold", "warm", "warm"):
    with ground_truth_ready(gt.device):
        torch.cuda._sleep(500_000_000)
        t = time.perf_counter(); beside_backbone(lambda: gt.sum().item(), gt.device)
        print(label, f"side sync {1000 * (time.perf_counter() - t):.2f} ms, main busy after: {not torch.cuda.current_stream().query()}")
    t = time.perf_counter(); torch.cuda.synchronize(); print(f"  then waited {1000 * (time.perf_counter() - t):.1f} ms for main")
PY
log "probe rc $?"
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
if [ "${GAPS:-1}" = 1 ]; then
  timeout 90 python3 benchmarks/profile_mask_rcnn_train.py --batch 8 --steps 4 --trace /tmp/trace.json.gz \
    > "$OUT/profile.md" 2>&1 && python3 benchmarks/trace_gaps.py /tmp/trace.json.gz --steps 4 > "$OUT/gaps.md" 2>&1
  log "gaps rc $?"
fi
# The rest of the issue's table (TABLE=1): batch 16, AMP, inference.
if [ "${TABLE:-0}" = 1 ]; then
  for a in "--train --batch 8 --amp" "--train --batch 16" "--train --batch 16 --amp" "--batch 1" "--batch 1 --amp"; do
    timeout 60 python3 benchmarks/bench_mask_rcnn.py --device cuda --iters "${ITERS:-30}" $a 2>&1 | grep -v "^|---"
  done > "$OUT/mask_rcnn_table.md"; log "table"
fi
END=${END:-420}
timeout $((END - SECONDS + T0)) python3 -m pytest -q -rfE -p no:cacheprovider -m cuda --continue-on-collection-errors tests \
  --deselect tests/layers/test_deform_conv.py --deselect tests/layers/test_nms_rotated.py > "$OUT/pytest_cuda_all.log" 2>&1
log "pytest cuda all rc $?"; tail -2 "$OUT/pytest_cuda_all.log" >> "$OUT/summary.txt"
