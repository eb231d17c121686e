"""Install lines for the remedy: the exact conda/mamba or pip command for a build variant.

Conda users get our channel and the variant's pytorch pins (the pins make the solver pick
the matching detectron2 build); pip users get the torch wheel index for the variant and a
rebuild of detectron2 against it; source checkouts get the in-place build.
"""
import shlex
from typing import List, Optional

from detectron2.doctor.cuda_tables import at_least, major_minor, toolkit_min_driver, version_tuple
from detectron2.doctor.facts import Facts
from detectron2.utils.variants import CHANNEL, VARIANTS, Variant, choose_variant

PIP_TORCH_INDEX = "https://download.pytorch.org/whl/"


def _variant_tag(variant: Variant) -> str:
    return "cpu" if variant.cuda is None else "cu" + variant.cuda.replace(".", "")


def conda_specs(variant: Variant, version: str) -> List[str]:
    # Build strings start with the variant name (cu117_..., cpu_...): the glob picks it exactly.
    specs = [f"detectron2={version}={variant.name}*", f"pytorch={variant.pytorch}", f"torchvision={variant.torchvision}"]
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
    cuda = ".".join(torch.cuda.split(".")[:2]) if torch.cuda else None
    installed = version_tuple(torch.base_version)
    for variant in VARIANTS:
        pinned = version_tuple(variant.pytorch)  # "2.12" pins 2.12.x
        if installed[: len(pinned)] == pinned and variant.cuda == cuda:
            return variant
    return None


def _driver_cuda(facts: Facts) -> Optional[str]:
    """The driver's CUDA version (conda's `__cuda`): as the driver reports it, else the newest
    toolkit whose minimum driver this driver meets."""
    driver = facts.driver
    if driver.cuda_version:
        return major_minor(driver.cuda_version)
    if not driver.version:
        return None
    known = [f"{major}.{minor}" for major in (10, 11, 12, 13) for minor in range(10)]
    fits = [c for c in known if toolkit_min_driver(c) and at_least(driver.version, toolkit_min_driver(c))]
    return max(fits, key=version_tuple) if fits else None


def best_variant(facts: Facts, want_cuda: Optional[bool] = None) -> Variant:
    """The variant to install here: the one conda's solver picks for this driver and these
    GPUs (variants.choose_variant, the rule the build numbers encode and
    tests/distribution/solve_table.md proves); the CPU build when none fits or CUDA is
    not wanted. The pytorch channels' stack first, conda-forge's where only it fits."""
    cpu = next(v for v in VARIANTS if not v.is_cuda)
    if want_cuda is None:
        want_cuda = bool(facts.gpus)
    if not want_cuda:
        return cpu
    capabilities = [g.arch for g in facts.gpus]
    return choose_variant(_driver_cuda(facts), capabilities) or cpu


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
