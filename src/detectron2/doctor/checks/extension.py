"""detectron2._C: loads, has CUDA where there is a GPU, and matches torch's CUDA."""
import os
import re
from typing import List

from detectron2.doctor import fixes, loader
from detectron2.doctor.cuda_tables import version_tuple
from detectron2.doctor.facts import Facts
from detectron2.doctor.result import FAIL, OK, SKIP, WARN, CheckResult

# libstdc++ symbol version -> the GCC release that introduced it (libstdc++ ABI policy).
_GLIBCXX_GCC = {"3.4.25": 8, "3.4.26": 9, "3.4.28": 10, "3.4.29": 11, "3.4.30": 12, "3.4.31": 13, "3.4.32": 13, "3.4.33": 14}


def _loader_fix(facts: Facts, diag: loader.LoaderDiagnosis) -> List[str]:
    cause = diag.cause
    if cause == loader.SOURCE_TREE:
        lines = fixes.source_build_lines(facts.source_root or ".", bool(facts.torch and facts.torch.is_cuda))
        return lines + ["or run from outside the checkout so that the installed detectron2 is imported"]
    if cause == loader.NOT_BUILT:
        return fixes.reinstall_lines(facts)
    if cause == loader.TORCH_LIB_MISSING:
        if facts.torch is None:
            return fixes.reinstall_lines(facts, rebuild=False)
        return ["import torch before detectron2._C (detectron2.layers does this for you)",
                "if that does not help, torch itself is damaged:"] + fixes.reinstall_lines(facts, rebuild=False)
    if cause == loader.GLIBCXX:
        gcc = _GLIBCXX_GCC.get((diag.symbol or "").replace("GLIBCXX_", ""), 12)
        lines = [f"remove directories holding an older libstdc++.so.6 from LD_LIBRARY_PATH"]
        if facts.env_kind == "conda":
            return lines + [f"{facts.conda_tool} install -c conda-forge 'libstdcxx-ng>={gcc}'"]
        return lines + ["or rebuild _C with the compiler of this system:"] + fixes.rebuild_lines(facts)
    return fixes.rebuild_lines(facts)


def check_ext_import(facts: Facts) -> CheckResult:
    ext = facts.ext
    if ext.loaded:
        flavour = f"CUDA {ext.cuda_version}" if ext.has_cuda else "CPU only"
        return CheckResult("ext-import", OK, f"detectron2._C loads ({ext.compiler}, {flavour})", [f"_C at {ext.path}"])
    evidence = [f"_C at {ext.path or '(no compiled module found)'}", f"detectron2 at {facts.detectron2_path}"]
    if facts.torch is not None:
        evidence.append(f"torch {facts.torch.version} at {facts.torch.path}")
    if ext.crashed is not None:
        evidence.append(ext.error or f"signal {ext.crashed}")
        return CheckResult("ext-import", FAIL, "importing detectron2._C crashes the interpreter: it was built against "
                           "another torch (or its libraries are missing)", evidence, fixes.rebuild_lines(facts))
    message = ext.error or "unknown error"
    diag = loader.classify(message, source_checkout=facts.source_root is not None)
    evidence.append(f"loader: {message}")
    if diag.cause == loader.CUDA_RUNTIME_MISSING and facts.torch is not None:
        m = re.search(r"\.so\.(\d+)", diag.symbol or "")
        built_for = f"CUDA {m.group(1)}.x" if m else "another CUDA"
        evidence.append(f"_C was built for {built_for}; torch has CUDA {facts.torch.cuda or 'none (CPU build)'}")
    if diag.cause == loader.CUDA_SYMBOL and facts.torch is not None and not facts.torch.is_cuda:
        evidence.append("torch is a CPU-only build: a CUDA _C cannot run on it")
    if diag.cause == loader.GLIBCXX:
        evidence += [f"loaded: {p}" for p in facts.loaded_libraries if os.path.basename(p).startswith("libstdc++")][:2]
    return CheckResult("ext-import", FAIL, f"detectron2._C cannot be loaded: {diag.summary}", evidence, _loader_fix(facts, diag))


def check_ext_cuda(facts: Facts) -> CheckResult:
    ext = facts.ext
    if not ext.loaded:
        return CheckResult("ext-cuda", SKIP, "_C not loaded (see ext-import)")
    evidence = [f"_C has_cuda() = {ext.has_cuda}", f"GPUs seen by the driver: {len(facts.gpus)}"]
    if facts.gpus and not ext.has_cuda:
        return CheckResult("ext-cuda", FAIL, "_C was built without CUDA on a machine with an NVIDIA GPU "
                           "('Not compiled with GPU support')", evidence, fixes.rebuild_lines(facts, cuda=True))
    if ext.has_cuda:
        return CheckResult("ext-cuda", OK, f"_C has CUDA {ext.cuda_version} kernels", evidence)
    return CheckResult("ext-cuda", OK, "CPU-only _C on a machine without an NVIDIA GPU", evidence)


def check_ext_cuda_version(facts: Facts) -> CheckResult:
    ext, torch = facts.ext, facts.torch
    if not ext.loaded or not ext.has_cuda or torch is None:
        return CheckResult("ext-cuda-version", SKIP, "_C is not a loaded CUDA build, or torch is missing")
    evidence = [f"_C built with CUDA {ext.cuda_version}", f"torch built with CUDA {torch.cuda or 'none (CPU build)'}"]
    if not torch.is_cuda:
        return CheckResult("ext-cuda-version", FAIL, f"_C was built for CUDA {ext.cuda_version} but torch is a CPU-only build",
                           evidence, fixes.rebuild_lines(facts))
    ours, theirs = version_tuple(ext.cuda_version or "0"), version_tuple(torch.cuda)
    if ours[:1] != theirs[:1]:
        return CheckResult("ext-cuda-version", FAIL, f"_C uses CUDA {ext.cuda_version}, torch uses CUDA {torch.cuda}",
                           evidence, fixes.rebuild_lines(facts))
    if ours[:2] != theirs[:2]:
        return CheckResult("ext-cuda-version", WARN, f"_C uses CUDA {ext.cuda_version}, torch uses CUDA {torch.cuda} "
                           "(same major: usually works)", evidence, fixes.rebuild_lines(facts))
    return CheckResult("ext-cuda-version", OK, f"_C and torch both use CUDA {torch.cuda}", evidence)
