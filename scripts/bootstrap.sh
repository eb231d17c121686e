#!/usr/bin/env bash
# Install what building and testing detectron2 needs on a fresh machine (idempotent), then
# build _C and install detectron2 itself in editable mode (scripts/build_inplace.sh), so
# that `detectron2-doctor`, `detectron2-demo` and `import detectron2` work afterwards.
# Installs into the active venv or conda env (PYTHON overrides the interpreter); make one
# first: python3 -m venv .venv && . .venv/bin/activate
# torch 2.14.1 / torchvision 0.29.1 are today's stack (on this workplace's disk: fast).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
start=$SECONDS
step() { echo "--- bootstrap: $* ($((SECONDS - start)) s)"; }

# An interpreter owned by the OS (Debian's python3: "externally-managed-environment")
# refuses pip installs: say what to do instead of showing pip's long refusal.
if ! "$PY" - <<'PYCODE'
import os, sys, sysconfig
in_env = sys.prefix != sys.base_prefix or os.path.isdir(os.path.join(sys.prefix, "conda-meta"))
managed = os.path.isfile(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))
sys.exit(1 if managed and not in_env else 0)
PYCODE
then
  echo "error: $("$PY" -c 'import sys; print(sys.executable)') is the system's Python, which refuses pip installs;" \
       "make and activate a venv first: python3 -m venv .venv && . .venv/bin/activate (or a conda env), then rerun" >&2
  exit 1
fi
if ! "$PY" -m pip --version >/dev/null 2>&1; then
  echo "error: $PY has no pip; in a venv: python3 -m venv --upgrade-deps .venv (Debian: apt-get install python3-venv)" >&2
  exit 1
fi
pip_install() { "$PY" -m pip install --disable-pip-version-check -q "$@"; }

step "torch, torchvision (large: minutes on a slow network)"
pip_install "torch==2.14.1" "torchvision==0.29.1"
step "build tools and dependencies"
pip_install ninja "setuptools>=77" wheel pytest pyyaml jinja2 \
  numpy Pillow matplotlib "hypothesis==6.155.2" "pycocotools>=2.0.2" termcolor tabulate cloudpickle tqdm tensorboard \
  "fvcore>=0.1.5,<0.1.6" "iopath>=0.1.7,<0.1.10" "omegaconf>=2.1,<2.4" "hydra-core>=1.1" yacs packaging \
  shapely scipy opencv-python-headless onnx onnxruntime \
  "py-rattler==0.28.0" "py-rattler-build==0.73.0" whl2conda conda-package-handling conda-pack
# Evaluation toolkits the evaluation tests use (pure Python). --no-deps: panopticapi-lite
# pins numpy<2 in its metadata but runs on numpy 2; lvis only needs what is above.
pip_install --no-deps "lvis==0.5.3" "panopticapi-lite==0.2.0"
step "detectron2 (build _C, install editable)"
PYTHON="$PY" bash scripts/build_inplace.sh
step "done"
