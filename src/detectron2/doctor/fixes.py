"""Install lines for the remedy: the exact conda/mamba or pip command for a build variant.

Conda users get our channel and the variant's pytorch pins (the pins make the solver pick
the matching detectron2 build); pip users get the torch wheel index for the variant and a
rebuild of detectron2 against it; source checkouts get the in-place build.
"""
import shlex
from typing import List, Optional, Sequence

from detectron2.doctor.cuda_tables import at_least, version_tuple
from detectron2.doctor.facts import Facts
from detectron2.utils._fatbin import kernel_image_for, parse_arch_list
from detectron2.utils.variants import CHANNEL, VARIANTS, Variant

PIP_TORCH_INDEX = "https://download.pytorch.org/whl/"


def _variant_tag(variant: Variant) -> str:
    return "cpu" if variant.cuda is None else "cu" + variant.cuda.replace(".", "")


def conda_specs(variant: Variant, version: str) -> List[str]:
    specs = [f"detectron2={version}", f"pytorch={variant.pytorch}", f"torchvision={variant.torchvision}"]
    if "pytorch" in variant.channels:  # the pytorch channel selects CUDA through metapackages
        specs.append(f"pytorch-cuda={variant.cuda}" if variant.is_cuda else "cpuonly")
    else:  # conda-forge: the flavour is in pytorch's build string, the runtime in cuda-version
        specs[1] = f"pytorch={variant.pytorch}=cuda*" if variant.is_cuda else f"pytorch={variant.pytorch}=cpu*"
        if variant.is_cuda:
            specs.append(f"cuda-version={variant.cuda}")
    return specs


def conda_line(variant: Variant, version: str, tool: str = "conda", force: bool = False) -> str:
    channels = [CHANNEL] + [c for c in variant.channels if c != CHANNEL]
    words = [tool, "install"] + (["--force-reinstall"] if force else [])
    for channel in channels:
        words += ["-c", channel]
    return " ".join(words + [shlex.quote(s) for s in conda_specs(variant, version)])


def pip_torch_line(variant: Variant) -> str:
    return (f"pip install torch=={variant.pytorch} torchvision=={variant.torchvision} "
            f"--index-url {PIP_TORCH_INDEX}{_variant_tag(variant)}")


def pip_rebuild_line(version: str) -> str:
    # --no-build-isolation: compile against the torch that is installed, not a fresh one.
    return f"pip install --no-build-isolation --no-cache-dir --force-reinstall --no-deps detectron2=={version}"


def source_build_lines(root: str, cuda: bool) -> List[str]:
    env = "FORCE_CUDA=1 " if cuda else "FORCE_CUDA=0 "
    return [f"cd {shlex.quote(root)} && rm -rf build && {env}python setup.py build_ext --inplace"]


def current_variant(facts: Facts) -> Optional[Variant]:
    """The variant that matches the installed torch (version and CUDA), if any."""
    torch = facts.torch
    if torch is None:
        return None
    for variant in VARIANTS:
        if variant.pytorch == torch.base_version and variant.cuda == (torch.cuda and ".".join(torch.cuda.split(".")[:2])):
            return variant
    return None


def _covers(variant: Variant, capabilities: Sequence) -> int:
    """2 when every GPU has SASS in the variant's ops, 1 when some need PTX, 0 when one has neither."""
    entries = parse_arch_list(variant.arch_list or "")
    score = 2
    for capability in capabilities:
        image = kernel_image_for(capability, entries)
        if image is None:
            return 0
        if image.kind == "PTX":
            score = 1
    return score


def best_variant(facts: Facts, want_cuda: Optional[bool] = None) -> Variant:
    """The variant to install here: a CUDA one the driver runs and whose ops cover every GPU
    (SASS preferred, newest CUDA first), else the CPU one."""
    gpus = facts.gpus
    if want_cuda is None:
        want_cuda = bool(gpus)
    cpu = [v for v in VARIANTS if not v.is_cuda]
    if want_cuda:
        driver = facts.driver.version
        runnable = [v for v in VARIANTS if v.is_cuda and (driver is None or v.min_driver is None or at_least(driver, v.min_driver))]
        caps = [g.capability for g in gpus]
        ranked = sorted(runnable, key=lambda v: (_covers(v, caps), version_tuple(v.cuda or "0")), reverse=True)
        if ranked and (not caps or _covers(ranked[0], caps) > 0):
            return ranked[0]
    return cpu[0] if cpu else VARIANTS[0]


def reinstall_lines(facts: Facts, variant: Optional[Variant] = None, rebuild: bool = True) -> List[str]:
    """The commands that put a matching detectron2 + torch pair in this environment."""
    variant = variant or current_variant(facts) or best_variant(facts)
    version = facts.detectron2_version
    if facts.env_kind == "conda":
        return [conda_line(variant, version, facts.conda_tool, force=True)]
    lines = [pip_torch_line(variant)]
    if rebuild:
        if facts.source_root:
            lines += source_build_lines(facts.source_root, variant.is_cuda)
        else:
            lines.append(pip_rebuild_line(version))
    return lines


def rebuild_lines(facts: Facts, cuda: Optional[bool] = None) -> List[str]:
    """Rebuild detectron2 against the torch already installed (keeping torch as it is)."""
    torch = facts.torch
    if cuda is None:
        cuda = bool(torch and torch.is_cuda)
    if facts.env_kind == "conda" and not facts.source_root:
        variant = current_variant(facts) or best_variant(facts, want_cuda=cuda)
        return [conda_line(variant, facts.detectron2_version, facts.conda_tool, force=True)]
    if facts.source_root:
        return source_build_lines(facts.source_root, cuda)
    prefix = "FORCE_CUDA=1 " if cuda else ""
    return [prefix + pip_rebuild_line(facts.detectron2_version)]
