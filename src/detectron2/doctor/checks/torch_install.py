"""PyTorch itself: importable, the right flavour for this machine, one copy, with cuDNN."""
import os

from detectron2.doctor import fixes
from detectron2.doctor.cuda_tables import version_tuple
from detectron2.doctor.facts import Facts
from detectron2.doctor.result import FAIL, OK, SKIP, WARN, CheckResult


def check_torch(facts: Facts) -> CheckResult:
    torch = facts.torch
    if torch is None:
        return CheckResult("torch", FAIL, "PyTorch cannot be imported",
                           [f"import torch: {facts.torch_error}"], fixes.reinstall_lines(facts, rebuild=False))
    flavour = f"CUDA {torch.cuda}" if torch.is_cuda else ("ROCm " + torch.hip if torch.hip else "CPU only")
    return CheckResult("torch", OK, f"torch {torch.version} ({flavour})", [f"torch at {torch.path}"])


def check_torch_cuda_build(facts: Facts) -> CheckResult:
    """A CPU-only torch on a machine with an NVIDIA GPU (or the conda pytorch-mutex saying cpu)."""
    torch = facts.torch
    if torch is None:
        return CheckResult("torch-cuda-build", SKIP, "torch not importable")
    mutex = facts.conda_packages.get("pytorch-mutex") if facts.is_conda else None
    evidence = [f"torch.version.cuda = {torch.cuda}", f"GPUs seen by the driver: {len(facts.gpus)}"]
    if mutex:
        evidence.append(f"conda-meta: pytorch-mutex {mutex[0]} {mutex[1]}")
    mutex_cpu = bool(mutex) and mutex[1] == "cpu"
    if facts.gpus and (not torch.is_cuda or mutex_cpu):
        evidence += [f"GPU {g.index}: {g.name} (sm_{g.capability[0]}{g.capability[1]})" for g in facts.gpus]
        why = "the conda environment pins CPU-only PyTorch (pytorch-mutex=*=cpu)" if mutex_cpu and torch.is_cuda else \
            "PyTorch is a CPU-only build but this machine has an NVIDIA GPU"
        variant = fixes.best_variant(facts, want_cuda=True)
        return CheckResult("torch-cuda-build", FAIL, why, evidence, fixes.reinstall_lines(facts, variant))
    if mutex_cpu and torch.is_cuda:
        return CheckResult("torch-cuda-build", WARN, "conda pins CPU-only PyTorch (pytorch-mutex cpu) but a CUDA torch is imported",
                           evidence, ["the imported torch is not the one conda manages: see the torch-installs check"])
    if not facts.gpus:
        what = "CPU-only torch on a machine without an NVIDIA GPU" if not torch.is_cuda else \
            "CUDA torch on a machine without an NVIDIA GPU (runs on CPU)"
        return CheckResult("torch-cuda-build", OK, what, evidence)
    return CheckResult("torch-cuda-build", OK, f"CUDA {torch.cuda} build of torch for {len(facts.gpus)} GPU(s)", evidence)


def check_torch_installs(facts: Facts) -> CheckResult:
    """Several torch packages on sys.path, or a pip torch shadowing conda's."""
    installs = facts.torch_installs
    torch = facts.torch
    evidence = [f"torch package on sys.path: {p}" for p in installs]
    if len(installs) > 1:
        shadowed = ", ".join(installs[1:])
        fix = [f"remove the extra copies so only one torch remains (e.g. `pip uninstall torch` in the environment that owns {shadowed}),",
               "or take their directories off PYTHONPATH / out of user site-packages (PYTHONNOUSERSITE=1)"]
        return CheckResult("torch-installs", FAIL, f"{len(installs)} torch installations on sys.path; {installs[0]} wins",
                           evidence, fix)
    conda_torch = facts.conda_packages.get("pytorch") if facts.is_conda else None
    if conda_torch and torch is not None and not facts.torch_from_conda:
        evidence += [f"conda-meta: pytorch {conda_torch[0]} {conda_torch[1]}",
                     f"imported torch at {torch.path}, installer: {torch.installer or 'unknown'}"]
        fix = ["pip uninstall -y torch torchvision"] + fixes.reinstall_lines(facts, rebuild=False)
        return CheckResult("torch-installs", FAIL, "a pip-installed torch shadows the conda-managed pytorch", evidence, fix)
    d2_conda = facts.conda_packages.get("detectron2") if facts.is_conda else None
    if d2_conda and torch is not None and not facts.torch_from_conda:
        evidence += [f"conda-meta: detectron2 {d2_conda[0]} {d2_conda[1]} (built against conda's pytorch)",
                     f"imported torch at {torch.path}, installer: {torch.installer or 'unknown'}"]
        return CheckResult("torch-installs", FAIL, "conda's detectron2 runs on a torch conda does not manage", evidence,
                           fixes.reinstall_lines(facts, rebuild=False))
    if not installs:
        return CheckResult("torch-installs", SKIP, "no torch package found on sys.path", evidence)
    source = "conda" if facts.torch_from_conda else (torch.installer if torch and torch.installer else "unknown installer")
    return CheckResult("torch-installs", OK, f"one torch installation ({source})", evidence)


def check_cudnn(facts: Facts) -> CheckResult:
    torch = facts.torch
    if torch is None or not torch.is_cuda:
        return CheckResult("cudnn", SKIP, "not a CUDA build of torch")
    evidence = [f"cuDNN runtime {torch.cudnn}, torch built with {torch.cudnn_compiled}",
                f"torch.backends.cudnn.enabled = {torch.cudnn_enabled}"]
    if torch.cudnn is None:
        return CheckResult("cudnn", FAIL, "cuDNN cannot be loaded by torch", evidence, fixes.reinstall_lines(facts, rebuild=False))
    runtime, compiled = version_tuple(torch.cudnn), version_tuple(torch.cudnn_compiled or torch.cudnn)
    if runtime[:1] != compiled[:1] or runtime[:2] < compiled[:2]:
        loaded = [p for p in facts.loaded_libraries if os.path.basename(p).startswith("libcudnn")]
        evidence += [f"loaded: {p}" for p in loaded[:3]]
        return CheckResult("cudnn", FAIL, f"cuDNN {torch.cudnn} is loaded but torch needs {torch.cudnn_compiled}", evidence,
                           ["make torch load its own cuDNN: remove other cuDNN directories from LD_LIBRARY_PATH "
                            "(see the ld-library-path check)"] + fixes.reinstall_lines(facts, rebuild=False))
    old = [g for g in facts.gpus if g.capability < (7, 5)]
    if old and runtime[:2] >= (9, 11):
        evidence += [f"GPU {g.index}: {g.name} sm_{g.capability[0]}{g.capability[1]}" for g in old]
        return CheckResult("cudnn", FAIL, f"cuDNN {torch.cudnn} does not support GPUs below sm_75", evidence,
                           fixes.reinstall_lines(facts, fixes.best_variant(facts), rebuild=False))
    if not torch.cudnn_enabled:
        return CheckResult("cudnn", WARN, "cuDNN is disabled (torch.backends.cudnn.enabled = False)", evidence,
                           ["remove `torch.backends.cudnn.enabled = False` from your code or startup files"])
    return CheckResult("cudnn", OK, f"cuDNN {torch.cudnn}", evidence)
