#!/usr/bin/env bash
# Session 8, device call 4: forward_pipeline.cu (im2col tuning, two-halves overlap). No _C build. SIZES=1: launch bounds at every benchmark size (call 5).
set -uo pipefail
R=$OUT/r; mkdir -p "$R"; E=benchmarks/results/h200-2026-12-03-session8/experiments
NV=$(python3 -c "import torch,os;print(os.path.realpath(os.path.dirname(torch.__file__)+'/../nvidia/cu13'))")
nvcc -std=c++17 -O3 -arch=sm_90 -Isrc/detectron2/csrc -I$NV/include -o /tmp/p $E/forward_pipeline.cu -L$NV/lib \
  -l:libcublas.so.13 -Xlinker -rpath=$NV/lib > "$R/build.log" 2>&1 && timeout 120 /tmp/p > "$R/forward_pipeline${SIZES:+_sizes}.md" 2>&1
echo "rc $?" >> "$R/forward_pipeline${SIZES:+_sizes}.md"
