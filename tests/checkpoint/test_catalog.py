"""``catalog://`` names resolve to upstream's URLs and load through DetectionCheckpointer."""
import pickle

import pytest
import torch

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.checkpoint.catalog import ModelCatalog
from detectron2.utils.file_io import PathManager


def test_imagenet_names_resolve_to_the_detectron_server():
    assert ModelCatalog.get("ImageNetPretrained/MSRA/R-50") == (
        "https://dl.fbaipublicfiles.com/detectron/ImageNetPretrained/MSRA/R-50.pkl"
    )
    assert ModelCatalog.get("ImageNetPretrained/FAIR/X-101-32x8d") == (
        "https://dl.fbaipublicfiles.com/detectron/ImageNetPretrained/20171220/X-101-32x8d.pkl"
    )
    assert len(ModelCatalog.C2_IMAGENET_MODELS) == 7


def test_detectron1_baselines_resolve_with_dataset_and_type():
    url = ModelCatalog.get("Caffe2Detectron/COCO/35857345/e2e_faster_rcnn_R-50-FPN_1x")
    assert url == (
        "https://dl.fbaipublicfiles.com/detectron/35857345/12_2017_baselines/"
        "e2e_faster_rcnn_R-50-FPN_1x.yaml.01_36_30.cUF7QR7I/output/train/"
        "coco_2014_train%3Acoco_2014_valminusminival/generalized_rcnn/model_final.pkl"
    )
    kp = ModelCatalog.get("Caffe2Detectron/COCO/37697547/e2e_keypoint_rcnn_R-50-FPN_1x")
    assert "/keypoints_coco_2014_train%3Akeypoints_coco_2014_valminusminival/generalized_rcnn/" in kp
    assert "/rpn/model_final.pkl" in ModelCatalog.get("Caffe2Detectron/COCO/35998355/rpn_R-50-C4_1x")
    assert "/generalized_rcnn/" in ModelCatalog.get("Caffe2Detectron/COCO/35998814/rpn_R-50-FPN_1x")


@pytest.mark.parametrize("name", ["ImageNetPretrained/MSRA/R-999", "Caffe2Detectron/COCO/1/x", "Something/else"])
def test_unknown_names_raise_runtime_error_naming_them(name):
    with pytest.raises(RuntimeError, match="not present in the catalog"):
        ModelCatalog.get(name)
    with pytest.raises(RuntimeError, match=name.split("/")[-1]):
        PathManager.get_local_path("catalog://" + name)


def test_checkpointer_loads_a_catalog_path(tmp_path, monkeypatch):
    # a Detectron1-style pickle served from a local file instead of the network
    model = torch.nn.Sequential(torch.nn.Linear(3, 2))
    blobs = {"0.weight": torch.randn(2, 3).numpy(), "0.bias": torch.randn(2).numpy()}
    local = tmp_path / "R-50.pkl"
    local.write_bytes(pickle.dumps({"blobs": blobs}))
    seen = []
    http = PathManager._path_handlers["https://"]

    def fake_get_local_path(path, **kwargs):
        seen.append(path)
        return str(local)

    monkeypatch.setattr(http, "_get_local_path", fake_get_local_path)
    DetectionCheckpointer(model).load("catalog://ImageNetPretrained/MSRA/R-50")
    assert seen == ["https://dl.fbaipublicfiles.com/detectron/ImageNetPretrained/MSRA/R-50.pkl"]
    torch.testing.assert_close(model[0].weight.detach(), torch.from_numpy(blobs["0.weight"]))
