"""The source-build toolchain under CUDA_HOME: nvcc matches torch and accepts the host compiler."""
from detectron2.doctor.cuda_tables import nvcc_max_gcc, version_tuple
from detectron2.doctor.facts import Facts
from detectron2.doctor.result import FAIL, OK, SKIP, WARN, CheckResult


def check_host_compiler(facts: Facts) -> CheckResult:
    tc = facts.toolchain
    if not tc.cuda_home:
        return CheckResult("host-compiler", SKIP, "CUDA_HOME is not set (no CUDA source build configured)")
    evidence = [f"CUDA_HOME = {tc.cuda_home}", f"nvcc {tc.nvcc_version or 'unknown'} at {tc.nvcc or '(missing)'}",
                f"host compiler: {tc.host_compiler or '(none found)'} {tc.host_compiler_kind or ''} "
                f"{tc.host_compiler_version or ''}".rstrip()]
    if tc.nvcc is None:
        return CheckResult("host-compiler", FAIL, f"CUDA_HOME={tc.cuda_home} has no bin/nvcc", evidence,
                           ["point CUDA_HOME at the CUDA toolkit root (the directory that holds bin/nvcc)"])
    if tc.host_compiler is None:
        return CheckResult("host-compiler", FAIL, "no host C++ compiler found for nvcc", evidence,
                           ["install gcc/g++ (or set CC to the compiler to use)"])
    torch = facts.torch
    if torch is not None and torch.cuda and tc.nvcc_version:
        if version_tuple(tc.nvcc_version)[:1] != version_tuple(torch.cuda)[:1]:
            return CheckResult("host-compiler", FAIL, f"nvcc {tc.nvcc_version} cannot build extensions for torch's CUDA "
                               f"{torch.cuda} (major versions differ)", evidence,
                               [f"set CUDA_HOME to a CUDA {torch.cuda} toolkit"])
    if tc.nvcc_version is None:
        return CheckResult("host-compiler", WARN, "cannot tell nvcc's version", evidence)
    if tc.host_compiler_kind != "gcc" or tc.host_compiler_version is None:
        return CheckResult("host-compiler", OK, f"nvcc {tc.nvcc_version} with {tc.host_compiler_kind or 'an unknown'} host "
                           "compiler (only GCC is checked)", evidence)
    limit = nvcc_max_gcc(tc.nvcc_version)
    gcc_major = version_tuple(tc.host_compiler_version)[0]
    if limit is None:
        return CheckResult("host-compiler", WARN, f"nvcc {tc.nvcc_version} is not in the host compiler table", evidence)
    if gcc_major > limit:
        return CheckResult("host-compiler", FAIL, f"nvcc {tc.nvcc_version} supports GCC <= {limit}, but the host compiler is "
                           f"GCC {tc.host_compiler_version}", evidence,
                           [f"install gcc-{limit} and g++-{limit}, then build with "
                            f"CC=gcc-{limit} CXX=g++-{limit} NVCC_PREPEND_FLAGS='-ccbin g++-{limit}'"])
    return CheckResult("host-compiler", OK, f"nvcc {tc.nvcc_version} accepts GCC {tc.host_compiler_version}", evidence)
