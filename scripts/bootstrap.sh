#!/usr/bin/env bash
# Install what building and testing detectron2 needs on a fresh machine (idempotent).
# torch 2.14.1 / torchvision 0.29.1 are today's stack (on this workplace's disk: fast).
set -euo pipefail
PY=${PYTHON:-python3}
pip_install() { "$PY" -m pip install --disable-pip-version-check -q "$@"; }

pip_install "torch==2.14.1" "torchvision==0.29.1"
pip_install ninja "setuptools>=64" wheel pytest pyyaml jinja2 \
  numpy Pillow matplotlib "pycocotools>=2.0.2" termcolor tabulate cloudpickle tqdm tensorboard \
  "fvcore>=0.1.5,<0.1.6" "iopath>=0.1.7,<0.1.10" "omegaconf>=2.1,<2.4" "hydra-core>=1.1" yacs packaging \
  shapely scipy opencv-python-headless onnx onnxruntime \
  "py-rattler==0.28.0" "py-rattler-build==0.73.0" whl2conda conda-package-handling conda-pack
# Evaluation toolkits the evaluation tests use (pure Python). --no-deps: panopticapi-lite
# pins numpy<2 in its metadata but runs on numpy 2; lvis only needs what is above.
pip_install --no-deps "lvis==0.5.3" "panopticapi-lite==0.2.0"
