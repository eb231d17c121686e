#!/usr/bin/env bash
# TorchScript scripting/tracing of small R-CNN/RetinaNet models on CUDA vs eager (~1-2 min).
set -euo pipefail
PYTHONPATH=src python3 scripts/gpu/export_torchscript_cuda.py
