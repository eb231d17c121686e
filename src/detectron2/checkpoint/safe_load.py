"""Loading checkpoints without running pickled code, and saving them atomically.

A pickle can name any importable callable (``os.system``...) and have it called while
loading. Checkpoints only need tensors, numpy arrays and plain containers, so the loaders
here resolve only those globals and refuse a file naming anything else.
"""
import io
import os
import pickle
import re
import tempfile
from typing import Any, BinaryIO, Callable, Dict, FrozenSet, Tuple

import torch

from detectron2.utils.file_io import PathManager

__all__ = ["UnsafeCheckpointError", "load_pkl", "load_torch", "atomic_write", "as_dict"]


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint references a global that loading it would import and call."""


_BUILTINS: FrozenSet[str] = frozenset(
    {"dict", "list", "tuple", "set", "frozenset", "int", "float", "complex", "str", "bytes", "bytearray", "bool", "slice"}
)
# numpy >= 2 moved numpy.core to numpy._core; pickles name either
_NUMPY_GLOBALS: FrozenSet[Tuple[str, str]] = frozenset(
    (mod + sub, name)
    for mod in ("numpy.core", "numpy._core")
    for sub, name in ((".multiarray", "_reconstruct"), (".multiarray", "scalar"), (".numeric", "_frombuffer"))
) | {("numpy", "ndarray"), ("numpy", "dtype")}  # _frombuffer: protocol-5 arrays
_OTHER_GLOBALS: FrozenSet[Tuple[str, str]] = frozenset(
    {
        ("collections", "OrderedDict"),
        # protocol-2 pickles written by Python 3 encode bytes through _codecs.encode
        ("_codecs", "encode"),
    }
)


def _is_numpy_dtype_class(module: str, name: str) -> bool:
    # numpy >= 1.25 pickles dtypes as numpy.dtypes.Float32DType etc.
    return module == "numpy.dtypes" and name.endswith("DType")


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only numpy-array reconstruction, builtin containers and scalars."""

    source = "<stream>"

    def find_class(self, module: str, name: str) -> Any:
        allowed = (
            (module in ("builtins", "__builtin__") and name in _BUILTINS)
            or (module, name) in _NUMPY_GLOBALS
            or (module, name) in _OTHER_GLOBALS
            or _is_numpy_dtype_class(module, name)
        )
        if not allowed:
            raise UnsafeCheckpointError(
                f"Refusing to load {self.source}: it references the global '{module}.{name}', "
                "which is not allowed in a checkpoint (only numpy arrays, builtin containers "
                "and scalars are)."
            )
        if module.startswith("numpy.core.") and hasattr(__import__("numpy"), "_core"):
            module = "numpy._core." + module[len("numpy.core."):]  # skip numpy 2's deprecation shim
        return super().find_class(module, name)


def load_pkl(f: BinaryIO, source: str = "<stream>") -> Any:
    """Unpickle a Detectron1 / model-zoo ``.pkl`` (latin1, for Python 2 pickles)."""
    unpickler = _RestrictedUnpickler(f, encoding="latin1")
    unpickler.source = source
    return unpickler.load()


def _torch_supports_weights_only() -> bool:
    version = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2])
    return version >= (1, 13)


class _TorchRestrictedUnpickler(_RestrictedUnpickler):
    """For torch < 1.13, which lacks ``weights_only``: also the tensor-rebuild globals."""

    def find_class(self, module: str, name: str) -> Any:
        if (module == "torch._utils" and name.startswith("_rebuild_")) or (
            module == "torch" and (name.endswith("Storage") or name == "Size")
        ):
            return getattr(__import__(module, fromlist=[name]), name)
        return super().find_class(module, name)


def _restricted_pickle_module(source: str) -> Any:
    """A ``pickle_module`` for ``torch.load`` whose Unpickler is restricted."""

    class Unpickler(_TorchRestrictedUnpickler):
        pass

    Unpickler.source = source

    class _Module:
        __name__ = "detectron2_restricted_pickle"
        UnpicklingError = pickle.UnpicklingError

        @staticmethod
        def load(f, **kwargs):
            return Unpickler(f, **kwargs).load()

    _Module.Unpickler = Unpickler
    return _Module


def load_torch(filename: str, weights_only: bool = True) -> Any:
    """``torch.load`` onto the CPU, refusing arbitrary globals. ``weights_only`` selects
    torch's own safe unpickler; without it (old torch) our restricted one is used."""
    if weights_only and _torch_supports_weights_only():
        try:
            return torch.load(filename, map_location=torch.device("cpu"), weights_only=True)
        except pickle.UnpicklingError as e:
            # torch's message is long and suggests weights_only=False; keep only the culprit
            found = re.search(r"GLOBAL (\S+)", str(e))
            culprit = f"the global '{found.group(1)}'" if found else f"something torch refused ({e})"
            raise UnsafeCheckpointError(
                f"Refusing to load {filename}: it references {culprit}, which is not allowed "
                "in a checkpoint (torch.load(weights_only=True) allows tensors and plain containers)."
            ) from e
    module = _restricted_pickle_module(filename)
    return torch.load(filename, map_location=torch.device("cpu"), pickle_module=module, weights_only=False)


def _is_local(path: str) -> bool:
    return "://" not in path


def atomic_write(path: str, write: Callable[[BinaryIO], None], path_manager=PathManager) -> None:
    """Write ``path`` so that a reader sees either the old or the complete new file.

    ``write`` fills a temporary file in the same directory, which is fsync'ed and then
    renamed over ``path``. A failure (or kill) mid-write leaves the previous file intact.
    Remote paths go through ``path_manager`` as-is.
    """
    if not _is_local(path):
        buf = io.BytesIO()
        write(buf)
        with path_manager.open(path, "wb") as f:
            f.write(buf.getvalue())
        return
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def _fsync_dir(directory: str) -> None:
    # makes the rename itself durable; not possible on every OS / filesystem
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def as_dict(obj: Any, filename: str) -> Dict[str, Any]:
    """Checks a loaded checkpoint is a dict (a bare array or list is no checkpoint)."""
    if not isinstance(obj, dict):
        raise ValueError(f"Checkpoint {filename} holds a {type(obj).__name__}, expected a dict.")
    return obj
