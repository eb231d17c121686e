"""Every GPU has a kernel image (SASS, or PTX the driver can JIT) in _C and in torch."""
import os
from typing import List, Optional

from detectron2.doctor import fixes
from detectron2.doctor.cuda_tables import version_tuple
from detectron2.doctor.facts import Facts
from detectron2.doctor.result import FAIL, OK, SKIP, CheckResult
from detectron2.utils._fatbin import FatbinEntry, FatbinError, format_arch_flags, kernel_image_for, read_fatbin_entries


def _coverage(facts: Facts, name: str, who: str, entries: List[FatbinEntry], ptx_cuda: Optional[str],
              fix: List[str]) -> CheckResult:
    """Judge each GPU against the entries; PTX also needs a driver as new as the PTX's toolkit."""
    evidence = [f"{who} carries: {format_arch_flags(entries)}"]
    missing, jit_blocked = [], []
    driver_cuda = facts.driver.cuda_version
    for gpu in facts.gpus:
        image = kernel_image_for(gpu.capability, entries)
        label = f"GPU {gpu.index} {gpu.name} (sm_{gpu.capability[0]}{gpu.capability[1]})"
        if image is None:
            missing.append(label)
            evidence.append(f"{label}: no SASS for sm_{gpu.capability[0]}x and no PTX <= {gpu.arch}")
        elif image.kind == "PTX":
            too_new = bool(ptx_cuda and driver_cuda and version_tuple(ptx_cuda)[:2] > version_tuple(driver_cuda)[:2])
            if too_new:
                jit_blocked.append(label)
            evidence.append(f"{label}: PTX {image.name} (JIT-compiled on first use)"
                            + (f"; PTX from CUDA {ptx_cuda} needs a driver for CUDA >= {ptx_cuda}" if too_new else ""))
        else:
            evidence.append(f"{label}: SASS {image.name}")
    if missing:
        return CheckResult(name, FAIL, f"no kernel image is available for {', '.join(missing)} in {who}", evidence, fix)
    if jit_blocked:
        return CheckResult(name, FAIL, f"{who}'s PTX is too new for this driver to JIT for {', '.join(jit_blocked)}",
                           evidence, fix)
    return CheckResult(name, OK, f"{who} has kernels for every GPU", evidence)


def _arch_env(facts: Facts) -> str:
    return ";".join(sorted({g.arch for g in facts.gpus}, key=version_tuple))


def check_ext_arch(facts: Facts) -> CheckResult:
    if not facts.gpus:
        return CheckResult("ext-arch", SKIP, "no GPU")
    ext = facts.ext
    if not ext.loaded or not ext.has_cuda:
        return CheckResult("ext-arch", SKIP, "_C is not a loaded CUDA build (see ext-import / ext-cuda)")
    entries = facts.ext_entries
    if entries is None:
        return CheckResult("ext-arch", SKIP, f"cannot read the fatbinary of {ext.path}")
    if not entries:
        return CheckResult("ext-arch", SKIP, "_C contains no CUDA device code", [f"_C at {ext.path}"])
    if facts.env_kind == "conda" and not facts.source_root:
        fix = fixes.reinstall_lines(facts, fixes.best_variant(facts, want_cuda=True))
    else:
        fix = [f"export TORCH_CUDA_ARCH_LIST='{_arch_env(facts)}'"] + fixes.rebuild_lines(facts, cuda=True)
    return _coverage(facts, "ext-arch", "detectron2._C", entries, ext.cuda_version, fix)


def _torch_entries(facts: Facts) -> List[FatbinEntry]:
    torch = facts.torch
    entries = torch.arch_entries if torch else []
    if entries or torch is None:
        return entries
    library = os.path.join(torch.path, "lib", "libtorch_cuda.so")
    try:  # no arch flags compiled in: read the fatbinary itself
        return read_fatbin_entries(library)
    except FatbinError:
        return []


def check_torch_arch(facts: Facts) -> CheckResult:
    torch = facts.torch
    if not facts.gpus:
        return CheckResult("torch-arch", SKIP, "no GPU")
    if torch is None or not torch.is_cuda:
        return CheckResult("torch-arch", SKIP, "torch is not a CUDA build (see torch-cuda-build)")
    entries = _torch_entries(facts)
    if not entries:
        return CheckResult("torch-arch", SKIP, "torch reports no architecture list")
    variant = fixes.best_variant(facts, want_cuda=True)
    fix = ["install a torch build that targets your GPU:"] + fixes.reinstall_lines(facts, variant)
    return _coverage(facts, "torch-arch", "torch", entries, torch.cuda, fix)
