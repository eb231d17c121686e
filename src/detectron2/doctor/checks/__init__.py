"""The doctor's checks, in the order they are run and reported."""
from detectron2.doctor.checks.arch import check_ext_arch, check_torch_arch
from detectron2.doctor.checks.driver import check_driver
from detectron2.doctor.checks.environment import check_ld_library_path, check_source_tree
from detectron2.doctor.checks.extension import check_ext_cuda, check_ext_cuda_version, check_ext_import
from detectron2.doctor.checks.selftest import check_selftest
from detectron2.doctor.checks.toolchain import check_host_compiler
from detectron2.doctor.checks.torch_install import check_cudnn, check_torch, check_torch_cuda_build, check_torch_installs
from detectron2.doctor.result import Check

CHECKS = (
    Check("torch", "PyTorch imports", check_torch),
    Check("torch-installs", "one torch on sys.path, the one the environment manages", check_torch_installs),
    Check("driver", "NVIDIA driver supports the CUDA runtimes of torch and _C", check_driver),
    Check("torch-cuda-build", "torch is a CUDA build where there is a GPU", check_torch_cuda_build),
    Check("cudnn", "cuDNN is present and enabled", check_cudnn),
    Check("torch-arch", "torch has kernels for every GPU", check_torch_arch),
    Check("ext-import", "detectron2._C loads", check_ext_import),
    Check("ext-cuda", "_C has CUDA kernels where there is a GPU", check_ext_cuda),
    Check("ext-cuda-version", "_C and torch use the same CUDA", check_ext_cuda_version),
    Check("ext-arch", "_C has kernels (SASS or PTX) for every GPU", check_ext_arch),
    Check("ld-library-path", "LD_LIBRARY_PATH does not override the environment's CUDA", check_ld_library_path),
    Check("source-tree", "detectron2 resolves to the intended copy", check_source_tree),
    Check("host-compiler", "nvcc and the host compiler fit for source builds", check_host_compiler),
    Check("selftest", "each CUDA op matches CPU on each GPU", check_selftest),
)

__all__ = ["CHECKS"]
