#!/usr/bin/env bash
# Lead's GPU run 2: build _C (sm_90), rotated tests + benches, perf.sh, memcheck of rotated tests.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=$PWD/src:/tmp/site PYTHONUNBUFFERED=1 CC=/usr/bin/gcc CXX=/usr/bin/g++
R=$OUT/r; mkdir -p $R
T0=$SECONDS
FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16 python3 setup.py -q build_ext --inplace > $R/build.log 2>&1; echo "build rc $? $((SECONDS-T0))s" | tee $R/summary.txt
ls -la src/detectron2/_C*.so >> $R/summary.txt
ROT="tests/layers/test_box_iou_rotated.py tests/layers/test_nms_rotated.py tests/layers/test_roi_align_rotated.py tests/layers/test_rotated_convention.py tests/layers/test_rotated_properties.py tests/structures/test_rotated_boxes.py tests/structures/test_rotated_consistency.py"
timeout 150 python3 -m pytest -q -rs -p no:cacheprovider $ROT > $R/rot_pytest.log 2>&1; echo "rot pytest rc $? $((SECONDS-T0))s" | tee -a $R/summary.txt
tail -3 $R/rot_pytest.log >> $R/summary.txt
OUT=$R/perf timeout 270 bash scripts/gpu/perf.sh; echo "perf rc $? $((SECONDS-T0))s" | tee -a $R/summary.txt
for b in nms_rotated box_iou_rotated roi_align_rotated; do timeout 45 python3 benchmarks/bench_$b.py --device cuda; done > $R/rot_bench.md 2>&1
echo "rot bench $((SECONDS-T0))s" | tee -a $R/summary.txt
left=$((560 - SECONDS + T0)); [ $left -gt 30 ] && D2_ROTATED_PROPERTY_EXAMPLES=25 timeout $((left-15)) compute-sanitizer --tool memcheck --error-exitcode 99 python3 -m pytest -q -p no:cacheprovider -m cuda -k "not sweep_nms" $ROT > $R/memcheck.log 2>&1; echo "memcheck rc $? $((SECONDS-T0))s" | tee -a $R/summary.txt
tail -3 $R/memcheck.log >> $R/summary.txt
cd $OUT && tar czf run2.tgz r && cp r/summary.txt . 
