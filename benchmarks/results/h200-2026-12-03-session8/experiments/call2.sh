#!/usr/bin/env bash
# Session 8, device call 2: cuBLASLt's algorithms for the forward GEMM (gemm_lt.cu), the tree's _C (row-pointer im2col, C++ layer entry points):
# deform_conv CUDA tests, profile_ops, bench_deform_conv twice, memcheck over the forward
# tests. Run from the repo root on the device; results under $OUT/r.
set -uo pipefail
R=$OUT/r; mkdir -p "$R"; T0=$SECONDS
log() { echo "$1 $((SECONDS - T0))s" | tee -a "$R/summary.txt"; }
{ nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv; git log --oneline -1; git status --short; } > "$R/device.txt" 2>&1
E=benchmarks/results/h200-2026-12-03-session8/experiments
NV=$(python3 -c "import torch,os;print(os.path.realpath(os.path.dirname(torch.__file__)+'/../nvidia/cu13'))")
( nvcc -std=c++17 -O2 -I$NV/include -o /tmp/g $E/gemm_lt.cu -L$NV/lib -l:libcublasLt.so.13 -l:libcublas.so.13 \
  -Xlinker -rpath=$NV/lib > "$R/gemm_lt_build.log" 2>&1 ) &
BUILD_LOG=$R/build.log source scripts/gpu/setup_device.sh; wait; log "build rc $BUILD_RC"
timeout 60 /tmp/g > "$R/gemm_lt.md" 2>&1; log "gemm_lt rc $?"
timeout 150 python3 -m pytest -q -rfE -p no:cacheprovider -m cuda tests/layers/test_deform_conv.py --durations=5 > "$R/pytest_deform.log" 2>&1
log "pytest rc $?"; tail -2 "$R/pytest_deform.log" >> "$R/summary.txt"
timeout 90 python3 benchmarks/profile_ops.py --device cuda --iters 20 > "$R/profile_ops.md" 2>&1; log "profile rc $?"
for i in 1 2; do timeout 90 python3 benchmarks/bench_deform_conv.py --device cuda > "$R/bench_deform_conv_$i.md" 2>&1; log "bench $i rc $?"; done
timeout ${MEMCHECK_S:-100} compute-sanitizer --tool memcheck --error-exitcode 99 python3 -m pytest -q -p no:cacheprovider -m cuda \
  tests/layers/test_deform_conv.py -k "forward_matches or many_channels or outside or im2col_step or cuda_matches_cpu or half" > "$R/memcheck.log" 2>&1
log "memcheck rc $?"; tail -3 "$R/memcheck.log" >> "$R/summary.txt"
