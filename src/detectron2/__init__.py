"""detectron2-neo: an API-compatible Detectron2 core with matched, prebuilt CUDA ops."""
import importlib.abc
import importlib.machinery
import sys
from typing import Optional, Sequence

__version__ = "0.7.0"


class _TorchFirstLoader(importlib.abc.Loader):
    """Wraps the extension loader of ``detectron2._C``: the extension links against
    torch's libraries (libc10, libtorch...), which only ``import torch`` brings into the
    process, so torch is imported first. ``import detectron2`` itself stays light."""

    def __init__(self, loader: importlib.abc.Loader):
        self._loader = loader

    def create_module(self, spec):  # noqa: ANN001 (importlib's protocol)
        try:
            import torch  # noqa: F401
        except (ImportError, OSError):
            pass  # then the extension's own error names the library it cannot find
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:  # noqa: ANN001
        self._loader.exec_module(module)


class _CExtensionFinder(importlib.abc.MetaPathFinder):
    """Finds ``detectron2._C`` like the normal path finder, loading it after torch."""

    def find_spec(self, fullname: str, path: Optional[Sequence[str]] = None, target=None):  # noqa: ANN001
        if fullname != __name__ + "._C":
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _TorchFirstLoader(spec.loader)
        return spec


if not any(isinstance(f, _CExtensionFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _CExtensionFinder())
