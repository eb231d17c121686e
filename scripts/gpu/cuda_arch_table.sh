#!/usr/bin/env bash
# On a GPU machine: what `__cuda_arch` a CEP 46 client would report here, which variant the
# table in variants.py (the one conda's solver follows, tests/distribution/solve_table.md)
# gives for this driver and GPU, what the doctor recommends, and the kernels of the torch
# installed here next to the cuda-arch range we model for the same CUDA major.
#   bash scripts/gpu/cuda_arch_table.sh      (from the repo root; writes $OUT/cuda_arch_table.txt)
set -euo pipefail
OUT=${OUT:-.}
mkdir -p "$OUT"
{
nvidia-smi --query-gpu=name,compute_cap,driver_version --format=csv
PYTHONPATH=src python3 - <<'PY'
import subprocess
import torch
from detectron2.utils import variants as V
from detectron2.doctor.facts import Facts
from detectron2.doctor.fixes import best_variant, _driver_cuda

caps = subprocess.run(["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"],
                      capture_output=True, text=True, check=True).stdout.split()
lowest = min(caps, key=V.cc_tuple)
facts = Facts()
driver = _driver_cuda(facts)
print(f"__cuda={driver} __cuda_arch={lowest} (GPUs {caps})")
for channels in V.CHANNEL_SETS:
    with_arch = V.choose(driver, lowest, channels=channels)
    without = V.choose(driver, None, channels=channels)
    name = lambda b: f"{b.variant.name} (build {b.number})" if b else "fails"
    print(f"channels {channels}: with __cuda_arch -> {name(with_arch)}; older client -> {name(without)}")
print("doctor recommends:", best_variant(facts).name)
flags = torch.cuda.get_arch_list()
print(f"torch {torch.__version__} kernels: {' '.join(flags)}")
cap = tuple(int(p) for p in lowest.split("."))
from detectron2.utils._fatbin import kernel_image_for, parse_arch_flags
print("torch here has code for this GPU:", kernel_image_for(cap, parse_arch_flags(" ".join(flags))))
for v in V.VARIANTS:
    if v.is_cuda:
        print(f"  {v.name}: cuda-arch {v.cuda_arch_spec}; runs here: {v.runs_on(lowest)}")
PY
} 2>&1 | tee "$OUT/cuda_arch_table.txt"
