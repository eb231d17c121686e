"""The facts the checks judge, gathered once, lazily, and overridable.

Checks never look at the machine themselves: they read attributes of a ``Facts``.
Each attribute is computed on first use and cached, so a run touches only what its
checks need (no CUDA initialisation without a driver, no subprocess without CUDA_HOME).
Tests inject faults by assigning attributes (``facts.torch = TorchInfo(...)``).
"""
import faulthandler
import functools
import importlib
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Tuple

from detectron2.utils._fatbin import FatbinEntry, FatbinError, parse_arch_flags, read_fatbin_entries
from detectron2.utils._gpu_probe import GPU, DriverInfo, probe_driver

__all__ = ["Facts", "TorchInfo", "ExtInfo", "Toolchain", "GPU", "DriverInfo"]

cached_property = functools.cached_property


@dataclass
class TorchInfo:
    version: str
    path: str  # the torch package directory
    cuda: Optional[str] = None  # torch.version.cuda; None for a CPU build
    cudnn: Optional[str] = None  # runtime cuDNN "9.1.0"; None when libcudnn cannot be used
    cudnn_compiled: Optional[str] = None  # the cuDNN torch was built against
    cudnn_enabled: bool = True
    debug: bool = False
    cxx11_abi: Optional[bool] = None
    arch_flags: str = ""  # torch._C._cuda_getArchFlags(): "sm_80 sm_90 compute_90"
    hip: Optional[str] = None
    installer: Optional[str] = None  # from the dist-info INSTALLER file: "pip", "conda", ...

    @property
    def base_version(self) -> str:
        return self.version.split("+")[0]

    @property
    def is_cuda(self) -> bool:
        return self.cuda is not None

    @property
    def arch_entries(self) -> List[FatbinEntry]:
        return parse_arch_flags(self.arch_flags)


@dataclass
class ExtInfo:
    path: Optional[str]  # the _C shared object the import system resolves; None: not built
    loaded: bool = False
    error: Optional[str] = None  # the loader's message when not loaded
    crashed: Optional[int] = None  # signal number when importing it killed the interpreter
    has_cuda: Optional[bool] = None
    cuda_version: Optional[str] = None
    compiler: Optional[str] = None


@dataclass
class Toolchain:
    cuda_home: Optional[str]
    nvcc: Optional[str] = None
    nvcc_version: Optional[str] = None
    host_compiler: Optional[str] = None
    host_compiler_kind: Optional[str] = None  # "gcc" or "clang"
    host_compiler_version: Optional[str] = None


# Libraries of a CUDA stack that an outside directory can silently replace.
CUDA_LIBRARY_PATTERN = re.compile(
    r"^lib(cudart|cudnn\w*|cublas(Lt)?|cufft|curand|cusolver|cusparse|nvrtc|nccl|nvJitLink|cuda)\.so(\.[\d.]+)?$"
)


def _timed(fn):
    """cached_property that also records how long the fact took (for --json)."""

    @functools.wraps(fn)
    def wrapper(self):
        start = time.perf_counter()
        try:
            return fn(self)
        finally:
            self.timings[fn.__name__] = round(time.perf_counter() - start, 4)

    return cached_property(wrapper)


class Facts:
    def __init__(self, environ: Optional[Dict[str, str]] = None, sys_path: Optional[List[str]] = None,
                 cwd: Optional[str] = None, prefix: Optional[str] = None):
        self.environ = dict(os.environ if environ is None else environ)
        self.sys_path = list(sys.path if sys_path is None else sys_path)
        self.cwd = cwd or os.getcwd()
        self.prefix = prefix or sys.prefix
        self.timings: Dict[str, float] = {}

    # --- interpreter and environment -------------------------------------------------

    @cached_property
    def python(self) -> str:
        return platform.python_version()

    @cached_property
    def platform(self) -> str:
        return sys.platform

    @cached_property
    def is_conda(self) -> bool:
        return os.path.isdir(os.path.join(self.prefix, "conda-meta"))

    @cached_property
    def conda_packages(self) -> Dict[str, Tuple[str, str]]:
        """name -> (version, build) of the conda environment, from conda-meta file names."""
        meta = os.path.join(self.prefix, "conda-meta")
        packages = {}
        try:
            names = os.listdir(meta)
        except OSError:
            return packages
        for file_name in names:
            if file_name.endswith(".json"):
                parts = file_name[: -len(".json")].rsplit("-", 2)
                if len(parts) == 3:
                    packages[parts[0]] = (parts[1], parts[2])
        return packages

    @property
    def env_kind(self) -> str:
        return "conda" if self.is_conda else "pip"

    @property
    def conda_tool(self) -> str:
        if "MAMBA_EXE" in self.environ or shutil.which("mamba", path=self.environ.get("PATH")):
            return "mamba"
        return "conda"

    @property
    def torch_from_conda(self) -> bool:
        torch = self.torch
        if not self.is_conda or "pytorch" not in self.conda_packages or torch is None:
            return False
        inside = _is_within(torch.path, self.prefix)
        return inside and torch.installer in (None, "conda")

    # --- torch ---------------------------------------------------------------------------

    @_timed
    def _torch_probe(self) -> Tuple[Optional[TorchInfo], Optional[str]]:
        try:
            import torch
        except Exception as e:  # ImportError, or OSError from a broken library
            return None, f"{type(e).__name__}: {e}"
        return _describe_torch(torch), None

    @cached_property
    def torch(self) -> Optional[TorchInfo]:
        return self._torch_probe[0]

    @cached_property
    def torch_error(self) -> Optional[str]:
        return self._torch_probe[1]

    @cached_property
    def torch_installs(self) -> List[str]:
        """Every sys.path directory that holds a torch package, in import order."""
        return _packages_on_path("torch", self.sys_path, self.cwd)

    @cached_property
    def torch_cuda_available(self) -> Optional[bool]:
        """torch.cuda.is_available(), asked only where a driver lists GPUs."""
        if not self.driver.gpus or self.torch is None or not self.torch.is_cuda:
            return None
        import torch

        return bool(torch.cuda.is_available())

    # --- detectron2 and its compiled extension --------------------------------------------

    @cached_property
    def detectron2_path(self) -> str:
        import detectron2

        return os.path.dirname(os.path.realpath(detectron2.__file__))

    @cached_property
    def detectron2_version(self) -> str:
        import detectron2

        return detectron2.__version__

    @cached_property
    def detectron2_installs(self) -> List[str]:
        return _packages_on_path("detectron2", self.sys_path, self.cwd)

    @cached_property
    def source_root(self) -> Optional[str]:
        """The checkout root when detectron2 is imported from a source tree."""
        parent = os.path.dirname(self.detectron2_path)
        candidates = [parent] + ([os.path.dirname(parent)] if os.path.basename(parent) == "src" else [])
        for root in candidates:
            if any(os.path.isfile(os.path.join(root, f)) for f in ("setup.py", "pyproject.toml")):
                return root
        return None

    @_timed
    def ext(self) -> ExtInfo:
        self._torch_probe  # _C links against torch's libraries: torch is loaded first
        return probe_extension()

    @_timed
    def ext_entries(self) -> Optional[List[FatbinEntry]]:
        """Fatbin entries of _C (None when there is no readable .so)."""
        if self.ext.path is None:
            return None
        try:
            return read_fatbin_entries(self.ext.path)
        except FatbinError:
            return None

    # --- driver, GPUs, libraries -----------------------------------------------------------

    @_timed
    def driver(self) -> DriverInfo:
        return probe_driver()

    @property
    def gpus(self) -> List[GPU]:
        return self.driver.gpus

    @cached_property
    def ld_library_path(self) -> List[str]:
        return [p for p in self.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p]

    @_timed
    def loaded_libraries(self) -> List[str]:
        """Shared objects mapped into this process (after torch and _C are loaded)."""
        self._torch_probe
        paths = []
        try:
            with open("/proc/self/maps") as f:
                for line in f:
                    path = line.rsplit(None, 1)[-1]
                    if path.startswith("/") and ".so" in path and path not in paths:
                        paths.append(path)
        except OSError:
            pass
        return paths

    @cached_property
    def env_library_dirs(self) -> List[str]:
        """Directories whose libraries belong to this environment (prefix, torch, pip CUDA wheels)."""
        dirs = [self.prefix]
        if self.torch is not None:
            dirs.append(os.path.dirname(self.torch.path))  # site-packages: torch/lib, nvidia/*/lib
        return [os.path.realpath(d) for d in dirs]

    # --- source-build toolchain --------------------------------------------------------------

    @_timed
    def toolchain(self) -> Toolchain:
        cuda_home = self.environ.get("CUDA_HOME") or self.environ.get("CUDA_PATH")
        tc = Toolchain(cuda_home=cuda_home)
        if not cuda_home:
            return tc
        nvcc = os.path.join(cuda_home, "bin", "nvcc")
        if os.path.isfile(nvcc):
            tc.nvcc = nvcc
            out = _run([nvcc, "--version"], self.environ)
            m = re.search(r"release (\d+\.\d+)", out or "")
            tc.nvcc_version = m.group(1) if m else None
        host = self.environ.get("NVCC_CCBIN") or self.environ.get("CC") or "gcc"
        tc.host_compiler = shutil.which(host, path=self.environ.get("PATH")) or (host if os.path.isfile(host) else None)
        if tc.host_compiler:
            first_line = (_run([tc.host_compiler, "--version"], self.environ) or "").splitlines()[:1]
            text = first_line[0] if first_line else ""
            if "clang" in text:
                m = re.search(r"clang version (\d+(?:\.\d+)*)", text)
                tc.host_compiler_kind, tc.host_compiler_version = "clang", m.group(1) if m else None
            else:
                versions = re.findall(r"\b(\d+\.\d+(?:\.\d+)?)\b", text)
                tc.host_compiler_kind, tc.host_compiler_version = "gcc", versions[-1] if versions else None
        return tc

    # --- summary for reports -----------------------------------------------------------------

    def summary(self) -> Dict[str, object]:
        torch = self.torch
        return {
            "python": self.python,
            "platform": self.platform,
            "environment": self.env_kind,
            "prefix": self.prefix,
            "detectron2": {"version": self.detectron2_version, "path": self.detectron2_path},
            "torch": None if torch is None else {
                "version": torch.version, "path": torch.path, "cuda": torch.cuda, "cudnn": torch.cudnn,
                "arch_flags": torch.arch_flags, "installer": torch.installer,
            },
            "extension": asdict(self.ext),
            "driver": {"present": self.driver.present, "version": self.driver.version,
                       "cuda_version": self.driver.cuda_version, "error": self.driver.error},
            "gpus": [{"index": g.index, "name": g.name, "capability": g.arch} for g in self.gpus],
        }


# --- helpers ----------------------------------------------------------------------------


def _is_within(path: str, root: str) -> bool:
    path, root = os.path.realpath(path), os.path.realpath(root)
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _run(cmd: List[str], environ: Dict[str, str], timeout: float = 10.0) -> Optional[str]:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=environ)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout + done.stderr


def _packages_on_path(name: str, sys_path: List[str], cwd: str) -> List[str]:
    """Real paths of `name` packages importable from sys.path, first (the winner) first."""
    found: List[str] = []
    for entry in sys_path:
        base = cwd if entry == "" else entry
        candidate = os.path.join(base, name)
        if os.path.isfile(os.path.join(candidate, "__init__.py")):
            real = os.path.realpath(candidate)
            if real not in found:
                found.append(real)
    return found


def _installer_of(package_dir: str, dist_name: str) -> Optional[str]:
    site = os.path.dirname(package_dir)
    try:
        names = os.listdir(site)
    except OSError:
        return None
    for entry in names:
        if entry.startswith(dist_name + "-") and entry.endswith(".dist-info"):
            try:
                with open(os.path.join(site, entry, "INSTALLER")) as f:
                    return f.read().strip() or None
            except OSError:
                return None
    return None


def _describe_torch(torch) -> TorchInfo:
    path = os.path.dirname(os.path.realpath(torch.__file__))
    info = TorchInfo(
        version=torch.__version__,
        path=path,
        cuda=torch.version.cuda,
        debug=bool(getattr(torch.version, "debug", False)),
        cxx11_abi=getattr(torch._C, "_GLIBCXX_USE_CXX11_ABI", None),
        hip=getattr(torch.version, "hip", None),
        installer=_installer_of(path, "torch"),
    )
    if info.cuda:
        flags = getattr(torch._C, "_cuda_getArchFlags", None)
        info.arch_flags = (flags() if flags else "") or ""
        binding = getattr(torch._C, "_cudnn", None)  # the raw binding: no CUDA initialisation
        if binding is not None:
            try:
                info.cudnn = ".".join(str(v) for v in binding.getRuntimeVersion())
                info.cudnn_compiled = ".".join(str(v) for v in binding.getCompileVersion())
            except Exception:  # libcudnn missing or unloadable
                info.cudnn = None
        info.cudnn_enabled = bool(torch.backends.cudnn.enabled)
    return info


def _import_extension(name: str) -> Dict[str, object]:
    try:
        C = importlib.import_module(name)
    except Exception as e:  # ImportError, OSError, or anything a broken module raises
        return {"loaded": False, "error": f"{type(e).__name__}: {e}"}
    result: Dict[str, object] = {"loaded": True}
    for key, fn in (("has_cuda", "has_cuda"), ("cuda_version", "get_cuda_version"), ("compiler", "get_compiler_version")):
        try:
            result[key] = getattr(C, fn)()
        except Exception:
            result[key] = None
    return result


def _import_in_child(name: str) -> Tuple[Dict[str, object], Optional[int]]:
    """Import _C in a forked child first: a crash there is reported instead of killing us."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: import, report, exit without running the parent's cleanup
        code = 0
        try:
            os.close(read_end)
            faulthandler.disable()  # a crash here is the finding, not something to dump
            os.write(write_end, json.dumps(_import_extension(name)).encode())
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    chunks = []
    with os.fdopen(read_end, "rb") as f:
        for chunk in iter(lambda: f.read(65536), b""):
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return {"loaded": False}, os.WTERMSIG(status)
    try:
        return json.loads(b"".join(chunks).decode() or "{}"), None
    except ValueError:
        return {"loaded": False, "error": "the import probe returned no result"}, None


def probe_extension(name: str = "detectron2._C") -> ExtInfo:
    """Locate and import the compiled extension, reporting (not suffering) a crash on import."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    path = spec.origin if spec is not None and spec.origin and os.path.isfile(spec.origin) else None
    info = ExtInfo(path=os.path.realpath(path) if path else None)
    if name not in sys.modules and hasattr(os, "fork") and sys.platform.startswith("linux"):
        probe, signal_number = _import_in_child(name)
        if signal_number is not None:
            info.crashed = signal_number
            info.error = f"importing {name} killed the interpreter with signal {signal_number}"
            return info
        if not probe.get("loaded"):
            info.error = str(probe.get("error"))
            return info
    result = _import_extension(name)
    info.loaded = bool(result.get("loaded"))
    info.error = result.get("error")  # type: ignore[assignment]
    info.has_cuda = result.get("has_cuda")  # type: ignore[assignment]
    info.cuda_version = result.get("cuda_version") if info.has_cuda else None  # type: ignore[assignment]
    info.compiler = result.get("compiler")  # type: ignore[assignment]
    return info
