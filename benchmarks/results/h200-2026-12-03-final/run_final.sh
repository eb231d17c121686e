#!/usr/bin/env bash
# Lead's final GPU run: build _C (sm_90), Mask R-CNN vs torchvision, CUDA tests, op benchmarks, profile, memcheck.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=$PWD/src:/tmp/site PYTHONUNBUFFERED=1 CC=/usr/bin/gcc CXX=/usr/bin/g++
R=$OUT/r; mkdir -p $R; T0=$SECONDS; END=${END:-500}
left() { echo $((END - SECONDS + T0)); }
log() { echo "$1 $((SECONDS-T0))s" | tee -a $R/summary.txt; }
{ nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv; python3 -c 'import torch,torchvision;print(torch.__version__,torch.version.cuda,torchvision.__version__)'; git log --oneline -1; } > $R/device.txt 2>&1
FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16 python3 setup.py -q build_ext --inplace > $R/build.log 2>&1; log "build rc $?"
ls -la src/detectron2/_C*.so >> $R/summary.txt
B=benchmarks
for a in "--train --batch 8" "--train --batch 8 --amp" "--train --batch 16" "--train --batch 16 --amp" "--batch 1" "--batch 1 --amp"; do
  timeout 60 python3 $B/bench_mask_rcnn.py --device cuda --iters 10 $a 2>&1 | grep -v "^|---"; done > $R/mask_rcnn.md; log "mask_rcnn"
timeout 130 python3 -m pytest -q -rfE -p no:cacheprovider -m cuda tests/layers tests/structures tests/modeling > $R/pytest_cuda_core.log 2>&1; log "pytest core rc $?"; tail -2 $R/pytest_cuda_core.log >> $R/summary.txt
for b in nms_rotated box_iou_rotated roi_align_rotated deform_conv; do echo "## $b"; timeout 30 python3 $B/bench_$b.py --device cuda; done > $R/ops.md 2>&1; log "ops"
[ $(left) -gt 60 ] && { timeout 45 python3 $B/profile_mask_rcnn_train.py --batch 8 --steps 5 > $R/profile_b8_fp32.md 2>&1; log "profile rc $?"; }
[ $(left) -gt 40 ] && { timeout $(( $(left) - 30 )) python3 -m pytest -q -rfE -p no:cacheprovider -m cuda tests/projects tests/export tests/checkpoint tests/config tests/data tests/evaluation tests/engine > $R/pytest_cuda_rest.log 2>&1; log "pytest rest rc $?"; tail -2 $R/pytest_cuda_rest.log >> $R/summary.txt; }
[ $(left) -gt 30 ] && { D2_ROTATED_PROPERTY_EXAMPLES=25 timeout $(( $(left) - 10 )) compute-sanitizer --tool memcheck --error-exitcode 99 python3 -m pytest -q -p no:cacheprovider -m cuda tests/layers/test_nms_segments.py tests/layers/test_rotated_convention.py tests/layers/test_roi_align_rotated.py > $R/memcheck.log 2>&1; log "memcheck rc $?"; tail -3 $R/memcheck.log >> $R/summary.txt; }
cd $OUT && tar czf final.tgz r && cp r/summary.txt r/mask_rcnn.md .
