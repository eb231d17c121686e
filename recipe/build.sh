#!/bin/bash
# conda-build runs this with the variant's keys from conda_build_config.yaml exported.
set -euxo pipefail

if [[ "${cuda_compiler_version:-None}" != "None" ]]; then
    export FORCE_CUDA=1
    export TORCH_CUDA_ARCH_LIST="${torch_cuda_arch_list}"
else
    export FORCE_CUDA=0
    unset TORCH_CUDA_ARCH_LIST
fi
export MAX_JOBS="${CPU_COUNT:-2}"

$PYTHON -m pip install . -vv --no-deps --no-build-isolation
