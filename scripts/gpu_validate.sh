#!/usr/bin/env bash
# Validate the CUDA side on a GPU machine: build _C for the local GPU's arch, run the
# whole test suite, the CUDA op tests under compute-sanitizer memcheck, the doctor and
# the benchmarks. Logs go to $OUT (or ./gpu-logs). Used for the H100 runs recorded in
# benchmarks/results/.
#   usage: scripts/gpu_validate.sh [build|test|memcheck|doctor|bench|maskrcnn|shapes|shapes_cpu|all]...
set -uo pipefail
OUT=${OUT:-$PWD/gpu-logs}
mkdir -p "$OUT"
export PYTHONPATH=$PWD/src:$PWD/benchmarks${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
ARCH=${TORCH_CUDA_ARCH_LIST:-$($PY -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability())')}
stages=("$@"); [ ${#stages[@]} -eq 0 ] && stages=(all)
# The lent H100 image exports CC/CXX=/opt/gcc/bin/gcc|g++, a wrapper that links libstdc++
# statically: _C then carries its own libstdc++ beside torch's shared one, and the first
# iostream use with numbers (any error message) crashes in the locale code. Use the
# system compilers, which link libstdc++ dynamically like torch.
if [ -x /usr/bin/g++ ]; then export CC=/usr/bin/gcc CXX=/usr/bin/g++; fi

run_stage() {
  case "$1" in
    build)
      nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv | tee "$OUT/device.txt"
      $PY -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' | tee -a "$OUT/device.txt"
      nvcc --version | tail -2 | tee -a "$OUT/device.txt"
      /usr/bin/time -f "build wall %es" env FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="$ARCH" MAX_JOBS=${MAX_JOBS:-16} \
        $PY setup.py build_ext --inplace > "$OUT/build.log" 2>&1; rc=$?
      tail -3 "$OUT/build.log"; return $rc ;;
    test)
      # tests/distribution and tests/hpc are CPU-side (solver, packaging, module systems): CI runs them.
      $PY -m pytest -q -rs -p no:cacheprovider --ignore=tests/distribution --ignore=tests/hpc tests 2>&1 \
        | tee "$OUT/pytest.log" | tail -25 ;;
    memcheck)
      compute-sanitizer --tool memcheck --target-processes all --error-exitcode 99 \
        $PY -m pytest -q -p no:cacheprovider -m cuda tests/layers tests/structures tests/doctor 2>&1 \
        | tee "$OUT/memcheck.log" | tail -15 ;;
    doctor)
      $PY -m detectron2.doctor 2>&1 | tee "$OUT/doctor.txt" | tail -40
      $PY -m detectron2.utils.collect_env > "$OUT/collect_env.txt" 2>&1 ;;
    bench)
      # BENCHES="deform_conv nms_rotated" picks some; default: all of them.
      local names=${BENCHES:-$(ls benchmarks/bench_*.py | sed 's#.*/bench_##; s#\.py$##')}
      for b in $names; do
        echo "## benchmarks/bench_$b.py --device cuda"; timeout ${BENCH_TIMEOUT:-300} $PY "benchmarks/bench_$b.py" --device cuda 2>&1
      done | tee "$OUT/bench_cuda.md" | tail -150 ;;
    maskrcnn)
      # Mask R-CNN R50-FPN whole-model matrix: inference fp32/AMP/channels_last, training batch 2-16 AMP off/on.
      { for opts in "" "--amp" "--amp --channels-last"; do
          $PY benchmarks/bench_mask_rcnn.py --device cuda $opts; done
        for b in 2 4 8 16; do for amp in "" "--amp"; do
          $PY benchmarks/bench_mask_rcnn.py --device cuda --train --batch $b $amp; done; done
      } 2>&1 | tee "$OUT/bench_mask_rcnn.md" | grep -v '^|---' ;;
    shapes)
      # End to end on the generated shapes: the full-size R50-FPN on the GPU (fp32 and AMP),
      # the CI test's small CPU model, and 1 vs 2 processes (NCCL on GPUs, gloo on CPU).
      local gpus; gpus=$($PY -c 'import torch; print(torch.cuda.device_count())')
      local runs=("gpu_r50 --device cuda --full-size --iters ${SHAPES_ITERS:-1000} --batch 16"
                  "gpu_r50_amp --device cuda --full-size --iters ${SHAPES_ITERS:-1000} --batch 16 --amp")
      [ "$gpus" -ge 2 ] && runs+=("gpu_r50_2gpu --device cuda --num-gpus 2 --full-size --iters ${SHAPES_ITERS:-1000} --batch 32")
      for r in "${runs[@]}"; do
        set -- $r; local name=$1; shift
        /usr/bin/time -f "$name wall %es" $PY scripts/train_shapes.py --output /tmp/shapes/$name --data /tmp/shapes/data "$@" \
          > "$OUT/shapes_$name.log" 2>&1
        tail -2 "$OUT/shapes_$name.log"; cp /tmp/shapes/$name/metrics.json "$OUT/shapes_$name.metrics.json" 2>/dev/null
        grep "iter:" /tmp/shapes/$name/log.txt | tail -1 | cut -c1-400
      done ;;
    shapes_cpu)
      # The CI test's setting (small model, CPU) and its 2-process gloo version, each on 4 cores.
      for r in "cpu_small" "cpu_small_2proc --num-gpus 2"; do
        set -- $r; local name=$1; shift
        OMP_NUM_THREADS=4 /usr/bin/time -f "$name wall %es" $PY scripts/train_shapes.py --output /tmp/shapes/$name \
          --data /tmp/shapes/data_cpu "$@" > "$OUT/shapes_$name.log" 2>&1
        tail -2 "$OUT/shapes_$name.log"; cp /tmp/shapes/$name/metrics.json "$OUT/shapes_$name.metrics.json" 2>/dev/null
      done ;;
    all)
      for s in build test memcheck doctor bench maskrcnn; do run_stage "$s" || echo "stage $s failed ($?)"; done ;;
    *) echo "unknown stage $1"; return 2 ;;
  esac
}

for s in "${stages[@]}"; do
  echo "=== $s"; run_stage "$s" || { echo "stage $s failed"; }
done
