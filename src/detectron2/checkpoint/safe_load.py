"""Loading checkpoints without running pickled code, and saving them atomically.

A pickle can name any importable callable (``os.system``...) and have it called while
loading. Checkpoints only need tensors, numpy arrays and plain containers, so the loaders
here resolve only those globals and refuse a file naming anything else.
"""
import io
import os
import pickle
import re
import struct
import tempfile
from typing import Any, BinaryIO, Callable, Dict, FrozenSet, Tuple

import torch

from detectron2.utils.file_io import PathManager

__all__ = [
    "UnsafeCheckpointError",
    "CorruptCheckpointError",
    "load_pkl",
    "load_torch",
    "atomic_write",
    "as_dict",
    "remove_stale_temporaries",
]


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint references a global that loading it would import and call."""


class CorruptCheckpointError(pickle.UnpicklingError, EOFError, RuntimeError):
    """A checkpoint file is empty, truncated or not a checkpoint at all. Also an EOFError
    and a RuntimeError: what torch.load raised for such files."""


# What reading a damaged file raises (torch's zip reader, pickle, legacy tar/struct paths).
_READ_ERRORS = (EOFError, RuntimeError, pickle.UnpicklingError, KeyError, ValueError, IndexError,
                TypeError, UnicodeDecodeError, struct.error)


def _corrupt(filename: str, e: BaseException) -> CorruptCheckpointError:
    size = os.path.getsize(filename) if os.path.isfile(filename) else None
    what = "is empty (0 bytes)" if size == 0 else f"cannot be read ({size} bytes)"
    first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
    return CorruptCheckpointError(
        f"Checkpoint {filename} {what}: it is truncated or corrupt, not a checkpoint torch/pickle "
        f"can read ({type(e).__name__}: {first}). Re-download or re-save it."
    )


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
        # proposal files may hold the enum itself; calling it only looks a member up
        ("detectron2.structures.boxes", "BoxMode"),
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
    try:
        return unpickler.load()
    except UnsafeCheckpointError:
        raise
    except _READ_ERRORS as e:
        raise _corrupt(source, e) from e


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
    torch's own safe unpickler; without it (old torch) our restricted one is used.
    Damaged files raise :class:`CorruptCheckpointError`, files naming code
    :class:`UnsafeCheckpointError`."""
    if os.path.isfile(filename) and os.path.getsize(filename) == 0:
        raise _corrupt(filename, EOFError("no data"))
    if weights_only and _torch_supports_weights_only():
        try:
            return torch.load(filename, map_location=torch.device("cpu"), weights_only=True)
        except pickle.UnpicklingError as e:
            # torch reports a refused global as "GLOBAL module.name"; anything else it could
            # not parse is damage, not danger
            found = re.search(r"GLOBAL (\S+)", str(e))
            if not found:
                raise _corrupt(filename, e) from e
            raise UnsafeCheckpointError(
                f"Refusing to load {filename}: it references the global '{found.group(1)}', which is not "
                "allowed in a checkpoint (torch.load(weights_only=True) allows tensors and plain containers)."
            ) from e
        except _READ_ERRORS as e:
            raise _corrupt(filename, e) from e
    module = _restricted_pickle_module(filename)
    try:
        return torch.load(filename, map_location=torch.device("cpu"), pickle_module=module, weights_only=False)
    except UnsafeCheckpointError:
        raise
    except _READ_ERRORS as e:
        raise _corrupt(filename, e) from e


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
            os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; others read like open() files
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


# The temporaries atomic_write leaves when killed: ".<name>.<random>.tmp".
_TEMPORARY = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")


def remove_stale_temporaries(directory: str) -> list:
    """Delete the temporaries an interrupted :func:`atomic_write` left in ``directory``;
    returns their paths. Call it only where no other writer is active (e.g. on resume)."""
    removed = []
    if not _is_local(directory) or not os.path.isdir(directory):
        return removed
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if _TEMPORARY.match(name) and os.path.isfile(path):
            try:
                os.unlink(path)
            except FileNotFoundError:
                continue
            removed.append(path)
    return removed


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe, but brief)
    os.umask(mask)
    return mask


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
