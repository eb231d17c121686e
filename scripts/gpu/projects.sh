#!/usr/bin/env bash
# GPU check of detectron2.projects (PointRend, DeepLab, Panoptic-DeepLab) at the shipped
# configs' real sizes: training step + inference on CUDA, CUDA vs CPU outputs.
# Run from the repository root; writes the pytest log and junit xml under $OUT.
set -euo pipefail
OUT="${OUT:-/tmp/projects_gpu}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
PYTHONPATH=src python -m pytest -q -m cuda tests/projects/test_projects_cuda.py \
    --junitxml="$OUT/projects_cuda.xml" 2>&1 | tee "$OUT/projects_cuda.log"
