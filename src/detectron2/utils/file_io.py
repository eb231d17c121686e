"""The project-wide PathManager (iopath) with http(s), OneDrive and ``detectron2://`` paths."""
import http.client
import os
from typing import Any, Optional
from urllib.parse import urlparse

from iopath.common.file_io import HTTPURLHandler, OneDrivePathHandler, PathHandler
from iopath.common.file_io import PathManager as PathManagerBase
from iopath.common.file_io import get_cache_dir

__all__ = ["PathManager", "PathHandler", "DownloadError"]

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


class DownloadError(OSError):
    """A remote file (e.g. model-zoo weights) could not be downloaded. The message is one
    line: the URL, why, and where to put the file by hand so that it is found offline."""


class _HTTPURLHandler(HTTPURLHandler):
    """iopath's http(s) handler, whose failures say how to provide the file instead of
    ending in a long network traceback."""

    def _get_local_path(self, path: str, force: bool = False, cache_dir: Optional[str] = None, **kwargs: Any) -> str:
        try:
            return super()._get_local_path(path, force=force, cache_dir=cache_dir, **kwargs)
        except (OSError, http.client.HTTPException) as e:
            cached = os.path.join(get_cache_dir(cache_dir), urlparse(path).path.lstrip("/"))
            reason = getattr(e, "reason", None) or e
            raise DownloadError(
                f"could not download {path} ({reason}); download it elsewhere and copy it to {cached} "
                "(the cache, found offline; FVCORE_CACHE moves it), or give the local file's path instead "
                "(e.g. MODEL.WEIGHTS /path/to/file)"
            ) from None


PathManager.register_handler(_HTTPURLHandler())
PathManager.register_handler(OneDrivePathHandler())
PathManager.register_handler(Detectron2Handler())
