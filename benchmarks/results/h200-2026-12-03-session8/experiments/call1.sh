#!/usr/bin/env bash
# Session 8, device call 1 (as run, the old header was a file in $E; now extracted with git show): the im2col variants harness (standalone, alongside the build),
# then the tree's _C: deform_conv CUDA tests, profile_ops, bench_deform_conv, and memcheck
# over the forward tests. Run from the repo root on the device; results under $OUT/r.
set -uo pipefail
R=$OUT/r; mkdir -p "$R"; T0=$SECONDS; E=benchmarks/results/h200-2026-12-03-session8/experiments
log() { echo "$1 $((SECONDS - T0))s" | tee -a "$R/summary.txt"; }
{ nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv; git log --oneline -1; git status --short; } > "$R/device.txt" 2>&1
( mkdir -p /tmp/old && git show 2f523d3:src/detectron2/csrc/ops/deform_conv/deform_conv_utils.h | sed "s/#pragma once//" > /tmp/old/old_deform_conv_utils.h
  nvcc -std=c++17 -O3 -arch=sm_90 -Isrc/detectron2/csrc -I/tmp/old -o /tmp/v $E/im2col_variants.cu > "$R/variants_build.log" 2>&1 ) &
BUILD_LOG=$R/build.log source scripts/gpu/setup_device.sh; wait; log "build rc $BUILD_RC"
timeout 120 /tmp/v > "$R/im2col_variants.md" 2>&1; log "variants rc $?"
timeout 150 python3 -m pytest -q -rfE -p no:cacheprovider -m cuda tests/layers/test_deform_conv.py > "$R/pytest_deform.log" 2>&1
log "pytest rc $?"; tail -2 "$R/pytest_deform.log" >> "$R/summary.txt"
timeout 90 python3 benchmarks/profile_ops.py --device cuda --iters 20 > "$R/profile_ops.md" 2>&1; log "profile rc $?"
timeout 90 python3 benchmarks/bench_deform_conv.py --device cuda > "$R/bench_deform_conv.md" 2>&1; log "bench rc $?"
timeout ${MEMCHECK_S:-100} compute-sanitizer --tool memcheck --error-exitcode 99 python3 -m pytest -q -p no:cacheprovider -m cuda \
  tests/layers/test_deform_conv.py -k "forward_matches or many_channels or outside or im2col_step or cuda_matches_cpu" > "$R/memcheck.log" 2>&1
log "memcheck rc $?"; tail -3 "$R/memcheck.log" >> "$R/summary.txt"
