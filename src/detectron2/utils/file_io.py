"""The project-wide PathManager (iopath) with http(s), OneDrive and ``detectron2://`` paths."""
from typing import Any

from iopath.common.file_io import HTTPURLHandler, OneDrivePathHandler, PathHandler
from iopath.common.file_io import PathManager as PathManagerBase

__all__ = ["PathManager", "PathHandler"]

PathManager = PathManagerBase()
"""Opens local files and the URL schemes registered below; use it instead of ``open``."""


class Detectron2Handler(PathHandler):
    """Maps ``detectron2://<name>`` onto the model-zoo download server."""

    PREFIX = "detectron2://"
    S3_DETECTRON2_PREFIX = "https://dl.fbaipublicfiles.com/detectron2/"

    def _get_supported_prefixes(self):
        return [self.PREFIX]

    def _resolve(self, path: str) -> str:
        """The https URL behind a ``detectron2://`` path."""
        return self.S3_DETECTRON2_PREFIX + path[len(self.PREFIX):]

    def _get_local_path(self, path: str, **kwargs: Any) -> str:
        return PathManager.get_local_path(self._resolve(path), **kwargs)

    def _open(self, path: str, mode: str = "r", **kwargs: Any):
        return PathManager.open(self._resolve(path), mode, **kwargs)


PathManager.register_handler(HTTPURLHandler())
PathManager.register_handler(OneDrivePathHandler())
PathManager.register_handler(Detectron2Handler())
