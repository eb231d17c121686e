"""PathManager on local files, and the detectron2:// -> model-zoo URL mapping (no network)."""
import pytest

from detectron2.utils import file_io
from detectron2.utils.file_io import PathHandler, PathManager


def test_local_files(tmp_path):
    d = tmp_path / "a" / "b"
    PathManager.mkdirs(str(d))
    assert PathManager.isdir(str(d))
    f = str(d / "x.txt")
    with PathManager.open(f, "w") as fh:
        fh.write("hello")
    assert PathManager.exists(f) and PathManager.isfile(f)
    with PathManager.open(f, "r") as fh:
        assert fh.read() == "hello"
    assert PathManager.ls(str(d)) == ["x.txt"]
    assert PathManager.get_local_path(f) == f
    PathManager.copy(f, str(d / "y.txt"))
    PathManager.rm(f)
    assert not PathManager.exists(f) and PathManager.isfile(str(d / "y.txt"))
    assert issubclass(file_io.Detectron2Handler, PathHandler)


def _handler():
    return PathManager._path_handlers["detectron2://"]


def test_detectron2_prefix_is_registered_with_http():
    assert isinstance(_handler(), file_io.Detectron2Handler)
    assert any(p.startswith("https://") for p in PathManager._path_handlers)
    name = "COCO-Detection/faster_rcnn_R_50_FPN_1x/137257794/model_final_b275ba.pkl"
    assert _handler()._resolve("detectron2://" + name) == (
        "https://dl.fbaipublicfiles.com/detectron2/" + name
    )


def test_detectron2_paths_go_to_the_https_handler(monkeypatch):
    http = PathManager._path_handlers["https://"]
    seen = []

    def fake_get_local_path(path, force=False, **kwargs):
        seen.append(path)
        return "/cache/model.pkl"

    def fake_open(path, mode="r", buffering=-1, **kwargs):
        seen.append(path)
        raise OSError("offline")

    monkeypatch.setattr(http, "_get_local_path", fake_get_local_path)
    monkeypatch.setattr(http, "_open", fake_open)
    assert PathManager.get_local_path("detectron2://ImageNetPretrained/MSRA/R-50.pkl") == "/cache/model.pkl"
    with pytest.raises(OSError, match="offline"):
        PathManager.open("detectron2://ImageNetPretrained/MSRA/R-50.pkl", "rb")
    assert seen == ["https://dl.fbaipublicfiles.com/detectron2/ImageNetPretrained/MSRA/R-50.pkl"] * 2
