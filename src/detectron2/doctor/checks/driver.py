"""The NVIDIA driver: present, working, and new enough for the CUDA runtimes in use."""
from typing import List, Tuple

from detectron2.doctor import fixes
from detectron2.doctor.cuda_tables import at_least, minor_compat_min_driver, toolkit_min_driver, version_tuple
from detectron2.doctor.facts import Facts
from detectron2.doctor.result import FAIL, OK, SKIP, WARN, CheckResult

_STUB, _NO_DEVICE, _DRIVER_MISMATCH = 34, 100, 803


def _runtimes(facts: Facts) -> List[Tuple[str, str]]:
    """(who, CUDA version) for torch and _C, where they are CUDA builds."""
    found = []
    torch = facts.torch
    if torch is not None and torch.is_cuda:
        found.append(("torch", torch.cuda))
    ext = facts.ext
    if ext.loaded and ext.has_cuda and ext.cuda_version:
        found.append(("detectron2._C", ext.cuda_version))
    return found


def _driver_error(facts: Facts, evidence: List[str]) -> CheckResult:
    driver = facts.driver
    if driver.error_code == _STUB:
        return CheckResult("driver", FAIL, "the CUDA toolkit's stub libcuda is loaded instead of the driver's", evidence,
                           ["remove the toolkit's .../lib64/stubs directory from LD_LIBRARY_PATH (stubs are for linking only)"])
    if driver.error_code == _DRIVER_MISMATCH:
        return CheckResult("driver", FAIL, "the user-space driver library (libcuda) does not match the kernel module", evidence,
                           ["remove CUDA 'compat' directories from LD_LIBRARY_PATH, or reboot after a driver update "
                            "so the loaded kernel module matches the installed libcuda"])
    if driver.error_code == _NO_DEVICE or (driver.error is None and not driver.gpus):
        visible = facts.environ.get("CUDA_VISIBLE_DEVICES")
        evidence.append(f"CUDA_VISIBLE_DEVICES = {visible!r}")
        return CheckResult("driver", WARN, "an NVIDIA driver is installed but no GPU is visible", evidence,
                           ["check CUDA_VISIBLE_DEVICES and that the job was given a GPU (nvidia-smi lists them)"])
    return CheckResult("driver", FAIL, "the NVIDIA driver does not work", evidence,
                       ["run nvidia-smi; reinstall or reload the NVIDIA driver if it fails too"])


def _judge(facts: Facts, who: str, cuda: str) -> Tuple[str, str]:
    """(status, sentence) for one CUDA runtime against the driver."""
    driver = facts.driver
    if driver.cuda_version:
        need, have = version_tuple(cuda)[:2], version_tuple(driver.cuda_version)[:2]
        if need[:1] > have[:1]:
            return FAIL, f"{who} needs CUDA {cuda} but the driver supports CUDA {driver.cuda_version} at most"
        if need > have:
            return WARN, (f"{who} (CUDA {cuda}) runs on this CUDA {driver.cuda_version} driver only through minor-version "
                          "compatibility: PTX JIT and some features are unavailable")
        return OK, f"{who} CUDA {cuda} <= driver's CUDA {driver.cuda_version}"
    if driver.version:
        compat, full = minor_compat_min_driver(cuda), toolkit_min_driver(cuda)
        if compat and not at_least(driver.version, compat):
            return FAIL, f"{who} needs CUDA {cuda}, which needs driver >= {compat}; this driver is {driver.version}"
        if full and not at_least(driver.version, full):
            return WARN, f"{who} (CUDA {cuda}) wants driver >= {full} for all features; this driver is {driver.version}"
        if compat or full:
            return OK, f"{who} CUDA {cuda}: driver {driver.version} >= {full or compat}"
    return WARN, f"cannot tell whether the driver supports {who}'s CUDA {cuda} (driver version unknown)"


def check_driver(facts: Facts) -> CheckResult:
    driver = facts.driver
    if not driver.present:
        return CheckResult("driver", SKIP, "no NVIDIA driver on this machine (CPU only)",
                           ["no /proc/driver/nvidia/version, /dev/nvidiactl or /dev/dxg"])
    evidence = [f"driver {driver.version or 'unknown'}, supports CUDA {driver.cuda_version or 'unknown'}"]
    if driver.libcuda_path:
        evidence.append(f"libcuda: {driver.libcuda_path}")
    if driver.error:
        evidence.append(driver.error)
    if driver.error or not driver.gpus:
        return _driver_error(facts, evidence)
    runtimes = _runtimes(facts)
    if not runtimes:
        return CheckResult("driver", OK, f"driver {driver.version} with {len(driver.gpus)} GPU(s); no CUDA runtime in use", evidence)
    verdicts = [_judge(facts, who, cuda) for who, cuda in runtimes]
    evidence += [sentence for _, sentence in verdicts]
    worst = FAIL if any(s == FAIL for s, _ in verdicts) else WARN if any(s == WARN for s, _ in verdicts) else OK
    if worst == OK:
        return CheckResult("driver", OK, f"driver {driver.version} supports the CUDA runtimes in use", evidence)
    newest = max((cuda for _, cuda in runtimes), key=version_tuple)
    fix = [f"update the NVIDIA driver to >= {toolkit_min_driver(newest) or 'the one your CUDA ' + newest + ' needs'}",
           "or install the build for the CUDA your driver supports:"] + fixes.reinstall_lines(facts, fixes.best_variant(facts))
    summary = next(sentence for status, sentence in verdicts if status == worst)
    return CheckResult("driver", worst, summary, evidence, fix)
