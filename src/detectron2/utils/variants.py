"""The build variants of the conda distribution: the one source of truth.

The recipes (recipe/meta.yaml, recipe/recipe.yaml, conda_build_config.yaml), the environment
files (environment.yml, envs/*.yml), the CI matrix, pyproject.toml, the doctor's fix lines,
the HPC modulefiles and scripts/build_variant.py all take versions, arch lists and the
GPU-to-variant choice from here; tests/distribution checks each of them against this table
and proves the choice with a real solver (py-rattler) over a model of the channels.

How a machine gets its variant. Every CUDA build depends on conda-forge's `cuda-arch`
metapackage, whose version X can only be installed where the `__cuda_arch` virtual package
(the lowest compute capability of the machine's GPUs, CEP 46) is X or absent. A build
declares the compute capabilities its whole environment runs on (its pytorch AND its ops:
SASS for sm_XY runs on X.Z with Z >= Y; PTX runs on anything newer) as a `cuda-arch` range,
and the build numbers rank the variants: among the builds a machine can install, the
solver takes the highest number. Clients without `__cuda_arch` (older conda, no plugin, or
a login node with only CONDA_OVERRIDE_CUDA) can install any `cuda-arch`, so for them the
ranking alone decides; the anchor's high-ranked build additionally depends on
`__cuda_arch` itself, so that such clients fall through to the widest variant instead of
one that only runs on Ampere/Ada. CPU builds constrain `__cuda_arch` away: where a client
reports a GPU that no CUDA build fits, the solve fails naming `__cuda_arch` instead of
quietly installing CPU ops (CONDA_OVERRIDE_CUDA_ARCH="" asks for the CPU build there).
`choose()` below is that rule, written out.
"""
from dataclasses import dataclass
from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

from detectron2.utils._fatbin import FatbinEntry, kernel_image_for, parse_arch_list

# The channel our packages are published to (`conda install -c <CHANNEL> detectron2`).
CHANNEL = "detectron2-neo"
PACKAGE_VERSION = "0.7.0"
# Base build number of the recipe; each build adds its rank (see Variant.priority).
BUILD_NUMBER = 0

# Every compute capability NVIDIA has shipped from Kepler on (the versions conda-forge's
# `cuda-arch` metapackage exists in), with the family names the README uses.
GPU_FAMILIES: Dict[str, str] = {
    "3.5": "Kepler", "3.7": "Kepler",
    "5.0": "Maxwell", "5.2": "Maxwell", "5.3": "Maxwell",
    "6.0": "Pascal", "6.1": "Pascal", "6.2": "Pascal",
    "7.0": "Volta", "7.2": "Volta",
    "7.5": "Turing",
    "8.0": "Ampere", "8.6": "Ampere", "8.7": "Ampere",
    "8.9": "Ada",
    "9.0": "Hopper",
    "10.0": "Blackwell", "10.3": "Blackwell", "11.0": "Blackwell", "12.0": "Blackwell", "12.1": "Blackwell",
}
COMPUTE_CAPABILITIES: Tuple[str, ...] = tuple(GPU_FAMILIES)

PLATFORMS = ("linux-64", "linux-aarch64")


def cc_tuple(capability: str) -> Tuple[int, int]:
    """"8.6" -> (8, 6); raises ValueError naming the argument on anything else."""
    parts = str(capability).split(".")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"capability: expected a compute capability 'major.minor' such as '8.6', got {capability!r}")
    return int(parts[0]), int(parts[1])


def _runs(entries: Sequence[FatbinEntry], capability: str) -> bool:
    return kernel_image_for(cc_tuple(capability), entries) is not None


@dataclass(frozen=True)
class Variant:
    name: str  # short tag used in build strings and env file names, e.g. "cu117"
    pytorch: str  # pytorch version pinned in host and run ("2.12" pins 2.12.*)
    torchvision: str
    cuda: Optional[str]  # CUDA runtime major.minor; None for CPU variants
    cudnn: Optional[str]  # cuDNN major.minor that the pytorch build carries
    arch_list: Optional[str]  # TORCH_CUDA_ARCH_LIST our ops are compiled for
    pythons: Tuple[str, ...]
    channels: Tuple[str, ...]  # in priority order, highest first
    min_driver: Optional[str]  # lowest Linux driver for this CUDA runtime's full feature set
    # "pytorch": the pytorch/nvidia channels (pytorch-mutex, pytorch-cuda, cpuonly);
    # "conda-forge": conda-forge's pytorch (flavour in the build string, cuda-version).
    stack: str = "pytorch"
    # Glob on pytorch's build string that selects the flavour (host pin and run pin).
    pytorch_build: str = "*"
    # conda-build's compiler('cuda') package for this CUDA version, None for CPU.
    cuda_compiler: Optional[str] = None
    # gcc major used with that nvcc (nvcc 11.x accepts gcc <= 11).
    gcc: str = "11"
    # Added to BUILD_NUMBER: among the builds a machine can install, the highest wins.
    priority: int = 0
    # The kernels the variant's pytorch itself carries (its TORCH_CUDA_ARCH_LIST).
    pytorch_arch_list: Optional[str] = None
    platforms: Tuple[str, ...] = ("linux-64",)
    # Extra run pins the variant's pytorch needs (pytorch 2.0.x breaks on MKL 2024.1).
    extra_run: Tuple[str, ...] = ()
    # Rank of a second build that also requires `__cuda_arch` (see the module docstring);
    # None: the variant has one build only.
    gated_priority: Optional[int] = None

    @property
    def is_cuda(self) -> bool:
        return self.cuda is not None

    @property
    def cuda_compiler_version(self) -> str:
        # conda-build compares this string in selectors; "None" is its CPU value.
        return self.cuda if self.cuda else "None"

    @property
    def arch_tag(self) -> str:
        """The arch list as it appears in build strings: "8.0;8.6+PTX" -> "sm80sm86ptx"."""
        if not self.arch_list:
            return ""
        tag = "".join("sm" + a.replace("+PTX", "").replace(".", "") for a in self.arch_list.split(";"))
        return tag + ("ptx" if self.arch_list.endswith("+PTX") else "")

    @property
    def build_prefix(self) -> str:
        """Start of the package's build string, e.g. "cu117_sm80sm86ptx" or "cpu"."""
        return f"{self.name}_{self.arch_tag}" if self.is_cuda else self.name

    @property
    def cuda_major(self) -> Optional[int]:
        return int(self.cuda.split(".")[0]) if self.cuda else None

    @property
    def driver_spec(self) -> Optional[str]:
        """The `__cuda` run requirement ("" means: present, any version).

        conda-forge's stack states the floor through `cuda-version`, whose run constraint
        is `__cuda >={major}` (minor-version compatibility: SASS built with 12.x runs on any
        12.x driver; only PTX JIT needs the newer one, which the doctor reports). The
        pytorch-channel stack has no cuda-version, so its floor is the runtime's major.minor.
        """
        if not self.cuda:
            return None
        return "" if self.stack == "conda-forge" else f">={self.cuda}"

    @property
    def driver_floor(self) -> Optional[str]:
        """The lowest `__cuda` (driver CUDA version) this variant installs on."""
        if not self.cuda:
            return None
        return f"{self.cuda_major}.0" if self.stack == "conda-forge" else self.cuda

    @property
    def cuda_version_spec(self) -> Optional[str]:
        """conda-forge's `cuda-version` run range, e.g. ">=12.9,<13"."""
        if not self.cuda or self.stack != "conda-forge":
            return None
        return f">={self.cuda},<{self.cuda_major + 1}"

    @property
    def sass_archs(self) -> Tuple[str, ...]:
        """SASS the built _C must contain, as cuobjdump names it: ("sm_80", "sm_86")."""
        if not self.arch_list:
            return ()
        return tuple("sm_" + a.replace("+PTX", "").replace(".", "") for a in self.arch_list.split(";"))

    @property
    def ptx_archs(self) -> Tuple[str, ...]:
        """PTX the built _C must contain: the last arch when the list ends in +PTX."""
        if not self.arch_list or not self.arch_list.endswith("+PTX"):
            return ()
        return ("compute_" + self.arch_list.split(";")[-1].replace("+PTX", "").replace(".", ""),)

    # --- which GPUs the variant serves ------------------------------------------------

    def runs_on(self, capability: str) -> bool:
        """Whether both the pytorch and the ops of this variant have a kernel image for a
        GPU of this compute capability (False for every GPU on a CPU variant)."""
        if not self.is_cuda:
            return False
        return (_runs(parse_arch_list(self.pytorch_arch_list or ""), capability)
                and _runs(parse_arch_list(self.arch_list or ""), capability))

    @property
    def gpu_capabilities(self) -> Tuple[str, ...]:
        """The known compute capabilities the whole environment runs on."""
        return tuple(c for c in COMPUTE_CAPABILITIES if self.runs_on(c))

    @property
    def cuda_arch_min(self) -> Optional[str]:
        caps = self.gpu_capabilities
        return caps[0] if caps else None

    @property
    def cuda_arch_spec(self) -> Optional[str]:
        """The `cuda-arch` run range that admits exactly gpu_capabilities: ">=8.0,<9.0";
        runs of capabilities joined with "|" where there is a gap (cu129 has no code for
        sm_110, Thor: sm_100 SASS is another major and its PTX is compute_120)."""
        caps = set(self.gpu_capabilities)
        if not caps:
            return None
        ranges, start = [], None
        for i, cap in enumerate(COMPUTE_CAPABILITIES + ("",)):
            if cap in caps and start is None:
                start = cap
            elif cap not in caps and start is not None:
                # PTX carries the last run onto every newer GPU: no upper bound there.
                ranges.append(f">={start}" + (f",<{cap}" if cap else ""))
                start = None
        return "|".join(ranges)

    @property
    def gpu_families(self) -> str:
        """Human summary: "Ampere, Ada (sm_80-sm_89)"."""
        caps = self.gpu_capabilities
        if not caps:
            return "none (CPU)"
        families = list(dict.fromkeys(GPU_FAMILIES[c] for c in caps))
        newest = "" if "," in (self.cuda_arch_spec or "").split("|")[-1] else " and newer (PTX)"
        return f"{', '.join(families)}{newest} (sm_{caps[0].replace('.', '')}-sm_{caps[-1].replace('.', '')})"

    def builds(self) -> Tuple["Build", ...]:
        plain = (Build(self, False, BUILD_NUMBER + self.priority),)
        if self.gated_priority is None:
            return plain
        return (Build(self, True, BUILD_NUMBER + self.gated_priority),) + plain


class Build(NamedTuple):
    """One package per (variant, python, platform) and per build: the anchor has two."""
    variant: Variant
    gated: bool  # also requires `__cuda_arch` (only clients that report the GPU get it)
    number: int  # the build number the solver ranks by


# Minimum Linux driver per CUDA toolkit release (NVIDIA's CUDA release notes, table 3).
MIN_LINUX_DRIVER = {
    "11.7": "515.43.04",
    "11.8": "520.61.05",
    "12.9": "575.51.03",
    "13.0": "580.65.06",
}

_PYTORCH_CHANNELS = ("pytorch", "nvidia", "conda-forge")
_CONDA_FORGE = ("conda-forge",)
_PY_LEGACY = ("3.8", "3.9", "3.10", "3.11")
_PY_TODAY = ("3.10", "3.11", "3.12", "3.13")
# pytorch 2.0.1's own kernels (torch.cuda.get_arch_list() of the pytorch-channel builds):
# no PTX, so nothing newer than the last entry runs it.
_ARCH_PT201_CU117 = "3.7;5.0;6.0;7.0;7.5;8.0;8.6"
_ARCH_PT201_CU118 = "3.7;5.0;6.0;7.0;7.5;8.0;8.6;9.0"
# conda-forge's pytorch for CUDA 12.8/12.9; CUDA 13 dropped Maxwell, Pascal and Volta.
_ARCH_CF_CU12 = "5.0;6.0;7.0;7.5;8.0;8.6;9.0;10.0;12.0+PTX"
_ARCH_CF_CU13 = "7.5;8.0;8.6;9.0;10.0;12.0+PTX"
# pytorch-channel pytorch 2.0.x fails to import with MKL 2024.1 (pytorch/pytorch#123097).
_MKL_PIN = ("mkl <2024.1",)

# Ranks (build numbers). With __cuda_arch: the anchor on Ampere/Ada, else the widest stack
# the driver runs. Without it: never the Ampere-only anchor first.
VARIANTS = (
    # (a) the anchor: pytorch 2.0.1 + pytorch-cuda 11.7, cuDNN 8.5 inside pytorch, Ampere/Ada
    # ops (that pytorch has no sm_90 and no PTX: it cannot serve Hopper anyway).
    Variant("cu117", "2.0.1", "0.15.2", "11.7", "8.5", "8.0;8.6+PTX",
            _PY_LEGACY, _PYTORCH_CHANNELS, MIN_LINUX_DRIVER["11.7"],
            stack="pytorch", pytorch_build="*cuda11.7*", cuda_compiler="nvcc", gcc="11",
            priority=100, gated_priority=500, pytorch_arch_list=_ARCH_PT201_CU117, extra_run=_MKL_PIN),
    # (b) same pytorch, CUDA 11.8: Maxwell to Hopper, for drivers older than 12.x. Kepler
    # (sm_37, in that pytorch) is left out: its last driver (R470) predates CUDA 11.8.
    Variant("cu118", "2.0.1", "0.15.2", "11.8", "8.7", "5.0;6.0;7.0;7.5;8.0;8.6;9.0+PTX",
            _PY_LEGACY, _PYTORCH_CHANNELS, MIN_LINUX_DRIVER["11.8"],
            stack="pytorch", pytorch_build="*cuda11.8*", cuda_compiler="nvcc", gcc="11",
            priority=200, pytorch_arch_list=_ARCH_PT201_CU118, extra_run=_MKL_PIN),
    # (c) CPU only on the pytorch channel (cpuonly + pytorch-mutex cpu).
    Variant("cpu", "2.0.1", "0.15.2", None, None, None,
            _PY_LEGACY, _PYTORCH_CHANNELS, None,
            stack="pytorch", pytorch_build="*cpu*", cuda_compiler=None, gcc="11", priority=10,
            extra_run=_MKL_PIN),
    # (d) today's conda-forge stack: pytorch 2.12 with CUDA 12.9 (current pin; Maxwell to
    # Blackwell, the widest variant: the default wherever the anchor is not) and 13.0
    # (migrating; Turing and newer), cuDNN 9; also on linux-aarch64 (Grace Hopper).
    Variant("cu129", "2.12", "0.27", "12.9", "9", _ARCH_CF_CU12,
            _PY_TODAY, _CONDA_FORGE, MIN_LINUX_DRIVER["12.9"],
            stack="conda-forge", pytorch_build="cuda*", cuda_compiler="cuda-nvcc", gcc="13", priority=400,
            pytorch_arch_list=_ARCH_CF_CU12, platforms=PLATFORMS),
    Variant("cu130", "2.12", "0.27", "13.0", "9", _ARCH_CF_CU13,
            _PY_TODAY, _CONDA_FORGE, MIN_LINUX_DRIVER["13.0"],
            stack="conda-forge", pytorch_build="cuda*", cuda_compiler="cuda-nvcc", gcc="14", priority=300,
            pytorch_arch_list=_ARCH_CF_CU13),
    # (e) CPU on conda-forge's pytorch: Python 3.12/3.13 and linux-aarch64.
    Variant("cfcpu", "2.12", "0.27", None, None, None,
            _PY_TODAY, _CONDA_FORGE, None,
            stack="conda-forge", pytorch_build="cpu*", cuda_compiler=None, gcc="13", priority=0,
            platforms=PLATFORMS),
)

DEFAULT_VARIANT = "cu117"

# PyPI names in pyproject.toml whose conda package has another name.
CONDA_NAMES: Dict[str, str] = {"Pillow": "pillow", "matplotlib": "matplotlib-base"}


def get_variant(name: str) -> Variant:
    for variant in VARIANTS:
        if variant.name == name:
            return variant
    known = ", ".join(v.name for v in VARIANTS)
    raise KeyError(f"unknown build variant {name!r}; known variants: {known}")


def all_builds(platform: str = "linux-64") -> Iterator[Build]:
    for variant in VARIANTS:
        if platform in variant.platforms:
            yield from variant.builds()


def build_string(variant: Variant, python: str, pkg_hash: str = "0000000",
                 build_number: Optional[int] = None) -> str:
    """The build string our recipe produces, e.g. cu117_sm80sm86ptx_py311h1a2b3c4_100."""
    number = BUILD_NUMBER + variant.priority if build_number is None else build_number
    return f"{variant.build_prefix}_py{python.replace('.', '')}h{pkg_hash}_{number}"


def _at_least(version: str, floor: str) -> bool:
    return tuple(int(p) for p in version.split(".")[:2]) >= tuple(int(p) for p in floor.split(".")[:2])


# The two channel lists a user installs from. Under strict channel priority the pytorch
# channel's pytorch shadows conda-forge's, so each list reaches exactly one stack.
CHANNEL_SETS: Dict[str, Tuple[str, ...]] = {
    "pytorch": (CHANNEL,) + _PYTORCH_CHANNELS,
    "conda-forge": (CHANNEL,) + _CONDA_FORGE,
}


def installable(build: Build, driver_cuda: Optional[str], cuda_arch: Optional[str],
                cpu_only: bool = False) -> bool:
    """Whether a solver can install this build on a machine reporting these virtual packages.

    driver_cuda: the `__cuda` version (None: no driver); cuda_arch: the `__cuda_arch` version
    (None: not reported); cpu_only: the request holds `cpuonly` / a CPU pytorch.
    """
    v = build.variant
    if not v.is_cuda:
        # CPU builds constrain `__cuda_arch <0a0`: never the silent pick on a machine that
        # reports a GPU (no variant fitting it must fail, naming __cuda_arch).
        return cuda_arch is None
    if cpu_only or driver_cuda is None or not _at_least(driver_cuda, v.driver_floor):
        return False
    if build.gated and cuda_arch is None:
        return False  # the build depends on __cuda_arch itself
    return cuda_arch is None or v.runs_on(cuda_arch)


def choose(driver_cuda: Optional[str], cuda_arch: Optional[str], cpu_only: bool = False,
           platform: str = "linux-64", channels: str = "pytorch") -> Optional[Build]:
    """The build `conda install -c <channels> detectron2` gets: the highest-numbered one
    the machine can install (None: the solve fails).

    channels: a key of CHANNEL_SETS. This is the rule the build numbers encode;
    tests/distribution proves it row by row with py-rattler over the channel model
    (tests/distribution/solve_table.md).
    """
    if cuda_arch is not None:
        cc_tuple(cuda_arch)
    if platform not in PLATFORMS:
        raise ValueError(f"platform: expected one of {', '.join(PLATFORMS)}, got {platform!r}")
    if channels not in CHANNEL_SETS:
        raise ValueError(f"channels: expected one of {', '.join(CHANNEL_SETS)}, got {channels!r}")
    reachable = CHANNEL_SETS[channels][1:]
    candidates = [b for b in all_builds(platform)
                  if b.variant.channels == reachable and installable(b, driver_cuda, cuda_arch, cpu_only)]
    if cpu_only:
        candidates = [b for b in candidates if not b.variant.is_cuda]
    return max(candidates, key=lambda b: b.number) if candidates else None


def choose_variant(driver_cuda: Optional[str], capabilities: Sequence[str] = (),
                   platform: str = "linux-64", channels: Optional[str] = None) -> Optional[Variant]:
    """The variant for a machine given its driver's CUDA version and its GPUs' compute
    capabilities (any order); `__cuda_arch` is the lowest of them, as CEP 46 defines it.
    Without `channels`, the pytorch channels first, then conda-forge (Blackwell, aarch64)."""
    arch = min(capabilities, key=cc_tuple) if capabilities else None
    for name in ([channels] if channels else list(CHANNEL_SETS)):
        if platform == "linux-aarch64" and name == "pytorch" and channels is None:
            continue
        build = choose(driver_cuda, arch, platform=platform, channels=name)
        if build:
            return build.variant
    return None


def serving(capability: str) -> List[Variant]:
    """Variants whose whole environment runs on a GPU of this capability."""
    return [v for v in VARIANTS if v.runs_on(capability)]


# Run requirements of the conda package that pyproject.toml does not state: OpenCV is an
# optional import for pip users, but the conda package ships it (from conda-forge) so that
# the data pipeline's cv2 paths work out of the box.
CONDA_EXTRA_RUN: Tuple[str, ...] = ("py-opencv",)
