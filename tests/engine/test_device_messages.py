"""DefaultPredictor / DefaultTrainer on a machine without CUDA, with MODEL.DEVICE cuda:
a clear error that says to set MODEL.DEVICE cpu, before anything is built."""
import pytest
import torch

from detectron2 import model_zoo
from detectron2.engine import DefaultPredictor, DefaultTrainer
from detectron2.engine import defaults as defaults_module


def _zoo_cfg(device: str):
    cfg = model_zoo.get_config("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml")
    cfg.MODEL.DEVICE = device
    cfg.MODEL.WEIGHTS = ""
    return cfg


@pytest.fixture
def no_cuda(monkeypatch):
    """A machine whose torch has CUDA but no GPU or driver."""
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    built = []
    monkeypatch.setattr(defaults_module, "build_model", lambda cfg: built.append(cfg) or torch.nn.Linear(1, 1))
    return built


@pytest.mark.parametrize("cls", [DefaultPredictor, DefaultTrainer])
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_device_without_cuda_says_to_set_model_device_cpu(no_cuda, cls, device):
    with pytest.raises(RuntimeError) as e:
        cls(_zoo_cfg(device))
    message = str(e.value)
    assert "MODEL.DEVICE cpu" in message and repr(device) in message
    assert "torch.cuda.is_available() is False" in message
    assert isinstance(e.value, AssertionError)  # what torch raises for a CPU-only build
    assert no_cuda == []  # nothing was built first


def test_cpu_only_torch_is_named(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)
    with pytest.raises(defaults_module.DeviceUnavailableError, match="CPU-only build.*MODEL.DEVICE cpu"):
        DefaultPredictor(_zoo_cfg("cuda"))


def test_device_index_beyond_the_gpus_is_named(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(defaults_module.DeviceUnavailableError, match=r"'cuda:2'.*has 2 CUDA device"):
        DefaultPredictor(_zoo_cfg("cuda:2"))


def test_cpu_device_is_not_checked_against_cuda(no_cuda):
    cfg = _zoo_cfg("cpu")
    defaults_module._check_device(cfg)  # no error
    predictor = DefaultPredictor(cfg)
    assert len(no_cuda) == 1 and predictor.cfg.MODEL.DEVICE == "cpu"
