"""Process environment: version info, RNG seeding, library configuration, custom setup hooks."""
import importlib
import importlib.util
import logging
import os
import random
import sys
from datetime import datetime
from types import ModuleType
from typing import Any, Dict, Iterable, Optional

import numpy as np
import torch

__all__ = ["seed_all_rng", "get_rng_state", "set_rng_state", "setup_environment", "setup_custom_environment", "TORCH_VERSION"]

TORCH_VERSION = tuple(int(x) for x in torch.__version__.split(".")[:2])
"""(major, minor) of the running torch, for version checks like ``TORCH_VERSION >= (1, 10)``."""

DOC_BUILDING = os.getenv("_DOC_BUILDING", False)  # set by the docs build


def seed_all_rng(seed: Optional[int] = None) -> None:
    """Seed the RNGs of python, numpy and torch (and PYTHONHASHSEED for child processes).

    Args:
        seed: None draws a fresh seed from the pid, the clock and os.urandom, and logs it.
    """
    if seed is None:
        seed = (
            os.getpid()
            + int(datetime.now().strftime("%S%f"))
            + int.from_bytes(os.urandom(2), "big")
        )
        logging.getLogger(__name__).info(f"Using a generated random seed {seed}")
    np.random.seed(seed % (2**32))  # numpy only takes 32-bit seeds
    torch.manual_seed(seed)
    random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)


def get_rng_state() -> Dict[str, Any]:
    """The states of python's, numpy's and torch's (CPU and CUDA) global RNGs, made of
    tensors and plain Python values only, so that a weights-only ``torch.load`` reads
    them back (checkpoints store them to make a resumed training run exact)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, py_state, py_gauss = random.getstate()
    state: Dict[str, Any] = {
        "python": [version, list(py_state), py_gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore RNG states captured by :func:`get_rng_state`."""
    version, py_state, py_gauss = state["python"]
    random.setstate((version, tuple(py_state), py_gauss))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    cuda_states = state.get("cuda")
    if cuda_states is not None and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_states)


def _import_file(module_name: str, file_path: str, make_importable: bool = False) -> ModuleType:
    """Execute the python file ``file_path`` as a module named ``module_name``.

    make_importable: also register it in sys.modules, so that later imports find it.
    """
    spec = importlib.util.spec_from_file_location(module_name, file_path)
    if spec is None or spec.loader is None:
        raise ImportError(f"Cannot import '{file_path}' as a python module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if make_importable:
        sys.modules[module_name] = module
    return module


def _configure_libraries() -> None:
    """Settings that keep third-party libraries from misbehaving inside data loaders."""
    if int(os.environ.get("DETECTRON2_DISABLE_CV2", False)):
        # A None entry makes `import cv2` fail fast, for users who must avoid OpenCV.
        sys.modules["cv2"] = None
    else:
        # OpenCL in cv2 can hang or leak memory in forked data-loader workers.
        os.environ["OPENCV_OPENCL_RUNTIME"] = "disabled"
        try:
            import cv2

            if int(cv2.__version__.split(".")[0]) >= 3:
                cv2.ocl.setUseOpenCL(False)
        except ModuleNotFoundError:
            pass  # cv2 is optional for the core library


_ENV_SETUP_DONE = False


def setup_environment() -> None:
    """Configure libraries once per process and run the module named by $DETECTRON2_ENV_MODULE.

    That module (a dotted module name or a path to a .py file) must define a
    ``setup_environment()`` function, which is called.
    """
    global _ENV_SETUP_DONE
    if _ENV_SETUP_DONE:
        return
    _ENV_SETUP_DONE = True
    _configure_libraries()
    custom_module_path = os.environ.get("DETECTRON2_ENV_MODULE")
    if custom_module_path:
        setup_custom_environment(custom_module_path)


def setup_custom_environment(custom_module: str) -> None:
    """Import ``custom_module`` (module name or .py path) and call its ``setup_environment()``."""
    if custom_module.endswith(".py"):
        module = _import_file("detectron2.utils.env.custom_module", custom_module)
    else:
        module = importlib.import_module(custom_module)
    setup = getattr(module, "setup_environment", None)
    if not callable(setup):
        raise AttributeError(
            f"Custom environment module '{custom_module}' must define a callable setup_environment()"
        )
    setup()


# Set while building the documentation (as upstream): enables fixup_module_metadata.
DOC_BUILDING = bool(os.getenv("_DOC_BUILDING", ""))


def fixup_module_metadata(module_name: str, namespace: Dict[str, Any], keys: Optional[Iterable[str]] = None) -> None:
    """Make public objects of a package report ``module_name`` as their ``__module__``.

    Objects re-exported from private submodules (or from fvcore) then show up under the
    public package in docs and reprs. Classes are processed recursively.

    As upstream, this only happens while building docs (env ``_DOC_BUILDING`` set): a
    rewritten ``__module__`` keeps TorchScript from finding a class's source.
    """
    if not DOC_BUILDING:
        return
    seen = set()

    def fix_one(qualname: str, name: str, obj: Any) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        mod = getattr(obj, "__module__", None)
        if not isinstance(mod, str) or not (mod.startswith(module_name) or mod.startswith("fvcore.")):
            return
        try:
            obj.__module__ = module_name
        except (AttributeError, TypeError):
            return  # read-only (e.g. builtins)
        if hasattr(obj, "__name__") and "." not in obj.__name__:
            obj.__name__ = name
            obj.__qualname__ = qualname
        if isinstance(obj, type):
            for attr_name, attr_value in list(obj.__dict__.items()):
                fix_one(qualname + "." + attr_name, attr_name, attr_value)

    for objname in namespace.keys() if keys is None else keys:
        if not objname.startswith("_"):
            fix_one(objname, objname, namespace[objname])
