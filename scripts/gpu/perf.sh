#!/usr/bin/env bash
# GPU feedback run for issue 13 (perf branch): correctness of the new CUDA paths first,
# then Mask R-CNN training/inference vs torchvision, the stage profile, and the
# deformable-convolution shapes of the issue. Run from the repo root with _C built for
# the GPU; writes its logs under "$OUT" (6 files). About 3-4 minutes on one H200.
set -uo pipefail
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/perf-out}
mkdir -p "$OUT"
B=benchmarks
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c "import torch, torchvision; print(torch.__version__, torch.version.cuda, torchvision.__version__)"
  python3 -c "import detectron2._C as C; print('_C has_cuda', C.has_cuda(), C.get_cuda_version())"
  ls -l src/detectron2/_C*.so && file -L src/detectron2/_C*.so  # release build: stripped, size
  size -A src/detectron2/_C*.so | grep -E "nv_fatbin|text|Total"
} > "$OUT/env.txt" 2>&1

# 1. CUDA correctness of the segmented NMS, the batched RPN selection and labelling (~40 s).
timeout 150 python3 -m pytest -q -x -m cuda tests/layers/test_nms_segments.py \
  tests/modeling/test_rpn_select_batched.py tests/modeling/test_rpn.py tests/modeling/test_matcher_sampling.py \
  tests/modeling/test_roi_sampling_batched.py tests/modeling/test_roi_heads.py tests/modeling/test_poolers_grouped.py \
  > "$OUT/tests_cuda.log" 2>&1
echo "tests rc=$?" >> "$OUT/tests_cuda.log"

# 2. Training throughput, ours vs torchvision, batch 8 and 16, fp32 and AMP; inference b1.
{
  for args in "--batch 8" "--batch 8 --amp" "--batch 16" "--batch 16 --amp"; do
    timeout 120 python3 $B/bench_mask_rcnn.py --device cuda --train --iters 20 $args || echo "FAILED: train $args"
  done
  timeout 90 python3 $B/bench_mask_rcnn.py --device cuda --iters 20 --batch 1 || echo "FAILED: inference b1"
} > "$OUT/train_infer.md" 2>&1

# 3. Stage breakdown of one training step (batch 8, fp32), ours and torchvision.
timeout 150 python3 $B/profile_mask_rcnn_train.py --device cuda --batch 8 --peer > "$OUT/profile_b8_fp32.md" 2>&1 \
  || echo "FAILED: profile" >> "$OUT/profile_b8_fp32.md"

# 4. Deformable convolution, the shapes first (2x256x64x64, 8x512x25x34).
timeout 120 python3 $B/bench_deform_conv.py --device cuda > "$OUT/deform_conv.md" 2>&1 \
  || echo "FAILED: deform_conv" >> "$OUT/deform_conv.md"
date -u >> "$OUT/env.txt"
