"""The process environment: LD_LIBRARY_PATH overrides and which detectron2 is imported."""
import os
import re
from typing import Dict, List, Optional

from detectron2.doctor import fixes
from detectron2.doctor.cuda_tables import version_tuple
from detectron2.doctor.facts import CUDA_LIBRARY_PATTERN, Facts
from detectron2.doctor.result import FAIL, OK, WARN, CheckResult


def _is_within(path: str, roots: List[str]) -> bool:
    real = os.path.realpath(path)
    return any(real == r or real.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def _soname_major(file_name: str) -> Optional[int]:
    m = re.search(r"\.so\.(\d+)", file_name)
    return int(m.group(1)) if m else None


def _expected_majors(facts: Facts) -> Dict[str, int]:
    """Library stem -> the major version this environment's torch uses."""
    torch = facts.torch
    majors: Dict[str, int] = {}
    if torch is not None and torch.cuda:
        cuda_major = version_tuple(torch.cuda)[0]
        majors.update({"libcudart": cuda_major, "libcublas": cuda_major, "libcublasLt": cuda_major, "libnvrtc": cuda_major})
    if torch is not None and torch.cudnn:
        majors["libcudnn"] = version_tuple(torch.cudnn)[0]
    return majors


def _foreign_dirs(facts: Facts) -> Dict[str, List[str]]:
    """LD_LIBRARY_PATH directories outside this environment -> the CUDA libraries they hold."""
    inside = facts.env_library_dirs
    found: Dict[str, List[str]] = {}
    for directory in facts.ld_library_path:
        if _is_within(directory, inside):
            continue
        try:
            names = sorted(n for n in os.listdir(directory) if CUDA_LIBRARY_PATTERN.match(n))
        except OSError:
            continue
        if names:
            found[directory] = names
    return found


def _fix(facts: Facts, bad: List[str]) -> List[str]:
    kept = [d for d in facts.ld_library_path if d not in bad]
    lines = [f"export LD_LIBRARY_PATH={':'.join(kept)}" if kept else "unset LD_LIBRARY_PATH"]
    modules = facts.environ.get("LOADEDMODULES", "")
    cuda_modules = [m for m in modules.split(":") if re.match(r"(?i)^(cuda|cudnn|nccl)", m)]
    if cuda_modules:
        lines.append("module unload " + " ".join(m.split("/")[0] for m in cuda_modules))
    return lines


def check_ld_library_path(facts: Facts) -> CheckResult:
    if not facts.ld_library_path:
        return CheckResult("ld-library-path", OK, "LD_LIBRARY_PATH is not set")
    foreign = _foreign_dirs(facts)
    evidence = [f"LD_LIBRARY_PATH = {':'.join(facts.ld_library_path)}"]
    if facts.environ.get("LOADEDMODULES"):
        evidence.append(f"loaded environment modules: {facts.environ['LOADEDMODULES']}")
    if not foreign:
        return CheckResult("ld-library-path", OK, "no CUDA libraries on LD_LIBRARY_PATH outside this environment", evidence)
    for directory, names in foreign.items():
        evidence.append(f"{directory}: {' '.join(names)}")
    stubs = [d for d, names in foreign.items() if "stubs" in d.split(os.sep) and any(n.startswith("libcuda.so") for n in names)]
    real_dirs = {os.path.realpath(d): d for d in foreign}
    used = [p for p in facts.loaded_libraries if os.path.dirname(os.path.realpath(p)) in real_dirs]
    majors = _expected_majors(facts)
    clashing = sorted({d for d, names in foreign.items() for n in names
                       if majors.get(n.split(".so")[0]) is not None and _soname_major(n) == majors[n.split(".so")[0]]})
    if stubs:
        return CheckResult("ld-library-path", FAIL, "LD_LIBRARY_PATH puts the CUDA toolkit's stub libcuda before the driver",
                           evidence, _fix(facts, stubs))
    if used:
        evidence += [f"loaded from LD_LIBRARY_PATH: {p}" for p in used]
        bad = sorted({real_dirs[os.path.dirname(os.path.realpath(p))] for p in used})
        return CheckResult("ld-library-path", FAIL, "CUDA libraries from LD_LIBRARY_PATH override this environment's",
                           evidence, _fix(facts, bad))
    if clashing:
        return CheckResult("ld-library-path", FAIL, "LD_LIBRARY_PATH holds the same CUDA/cuDNN libraries as this environment "
                           "and can override them", evidence, _fix(facts, clashing))
    return CheckResult("ld-library-path", WARN, "LD_LIBRARY_PATH holds a system or module CUDA (not used by torch now, but "
                       "picked up by source builds and other libraries)", evidence, _fix(facts, list(foreign)))


def _newest_source(root: str) -> float:
    csrc = os.path.join(root, "src", "detectron2", "csrc")
    if not os.path.isdir(csrc):
        csrc = os.path.join(root, "detectron2", "csrc")
    newest = 0.0
    for directory, _dirs, files in os.walk(csrc):
        for name in files:
            if name.endswith((".cpp", ".cu", ".h", ".cuh")):
                newest = max(newest, os.path.getmtime(os.path.join(directory, name)))
    return newest


def check_source_tree(facts: Facts) -> CheckResult:
    installs, root, path = facts.detectron2_installs, facts.source_root, facts.detectron2_path
    evidence = [f"detectron2 imported from {path}"] + [f"detectron2 package on sys.path: {p}" for p in installs]
    cwd = os.path.realpath(facts.cwd)
    if len(installs) > 1 and os.path.dirname(installs[0]) == cwd:
        return CheckResult("source-tree", FAIL, f"the current directory's detectron2 ({installs[0]}) shadows the one at "
                           f"{installs[1]}", evidence, ["run from another directory (cd ..), or build the checkout in place:"]
                           + fixes.source_build_lines(cwd, bool(facts.torch and facts.torch.is_cuda)))
    if root is not None and facts.ext.path is None:
        fix = fixes.source_build_lines(root, bool(facts.torch and facts.torch.is_cuda))
        return CheckResult("source-tree", FAIL, f"detectron2 is imported from the source checkout {root}, which has no built _C",
                           evidence, fix + ["or run from outside the checkout so that the installed detectron2 is imported"])
    if root is not None:
        ext_time = os.path.getmtime(facts.ext.path) if facts.ext.path else 0.0
        if _newest_source(root) > ext_time:
            return CheckResult("source-tree", WARN, f"the source checkout {root} has C++/CUDA sources newer than its built _C",
                               evidence, fixes.source_build_lines(root, bool(facts.ext.has_cuda)))
        return CheckResult("source-tree", OK, f"source checkout at {root} with a built _C", evidence)
    if len(installs) > 1:
        return CheckResult("source-tree", WARN, f"{len(installs)} detectron2 packages on sys.path; {installs[0]} wins", evidence,
                           ["uninstall or take off PYTHONPATH the copies you do not use"])
    return CheckResult("source-tree", OK, f"installed package at {path}", evidence)
