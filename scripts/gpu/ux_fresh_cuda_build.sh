#!/usr/bin/env bash
# Issue 14, item 1 on the GPU machine (run from the repo root; outputs under $OUT):
# a clean copy of the tree (no build/ or _C from earlier), a fresh venv that sees the
# machine's torch (--system-site-packages: pip has no network there), then what bootstrap
# does after its pip installs: scripts/build_inplace.sh with FORCE_CUDA=1 (the CUDA compile
# must find the headers the pip torch depends on, site-packages/nvidia/*/include), the
# editable install, the console scripts, the CUDA op tests and the demo on the GPU.
set -uo pipefail
OUT=${OUT:-/tmp/ux-out}
mkdir -p "$OUT"
start=$SECONDS
fresh=$(mktemp -d)/detectron2
mkdir -p "$fresh"
tar --exclude=./build --exclude='./src/detectron2/_C*.so' --exclude=./.venv -cf - . | tar -xf - -C "$fresh"
cd "$fresh"
python3 -m venv --system-site-packages .venv && . .venv/bin/activate
{
  echo "python $(which python3); torch $(python3 -c 'import torch; print(torch.__version__, torch.version.cuda)')"
  ls /usr/local/cuda/include | grep -c -E '^(cusparse|cublas_v2|cusolverDn)\.h$' | sed 's/^/library headers in the toolkit: /'
} | tee "$OUT/env.txt"
FORCE_CUDA=1 MAX_JOBS=16 bash scripts/build_inplace.sh > "$OUT/build.log" 2>&1
echo "build rc=$? after $((SECONDS - start)) s" | tee -a "$OUT/env.txt"
tail -5 "$OUT/build.log"
grep -m3 -E "cusparse|error" "$OUT/build.log"
which detectron2-doctor detectron2-demo detectron2-train | tee -a "$OUT/env.txt"
(cd / && python3 -c "import detectron2._C as C; print(C.__file__)") | tee -a "$OUT/env.txt"
detectron2-doctor > "$OUT/doctor.txt" 2>&1; echo "doctor rc=$?" | tee -a "$OUT/env.txt"
python3 -m pytest -q -x tests/layers -m cuda -p no:cacheprovider > "$OUT/cuda_tests.txt" 2>&1
echo "cuda layer tests rc=$?: $(tail -1 "$OUT/cuda_tests.txt")" | tee -a "$OUT/env.txt"
python3 -c "from detectron2.data.datasets.shapes import generate_shapes_dataset as g; g('/tmp/ux-shapes', num_images=1)"
detectron2-demo --config-file COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml \
  --input /tmp/ux-shapes/images/000000.png --output "$OUT/demo_random_cuda.png" --confidence-threshold 0 \
  --opts MODEL.WEIGHTS "" > "$OUT/demo.txt" 2>&1
echo "demo (random weights, --device auto) rc=$?: $(grep -o 'instances in .*' "$OUT/demo.txt" | head -1)" | tee -a "$OUT/env.txt"
echo "total $((SECONDS - start)) s" | tee -a "$OUT/env.txt"
