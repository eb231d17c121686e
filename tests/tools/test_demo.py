"""detectron2-demo: pictures of predictions from a YAML config (random weights here),
and one-line errors for what a user can fix (missing input, no CUDA, offline weights)."""
import urllib.error

import numpy as np
import pytest
import torch
from PIL import Image

from detectron2 import model_zoo
from detectron2.data.datasets.shapes import generate_shapes_dataset
from detectron2.tools import demo


@pytest.fixture(scope="module")
def small_config(tmp_path_factory):
    """A small Mask R-CNN (R18-FPN-64, 128 px) with random weights, saved as YAML."""
    folder = tmp_path_factory.mktemp("demo")
    cfg = model_zoo.get_config("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml")
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.FPN.OUT_CHANNELS = 64
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 3
    cfg.INPUT.MIN_SIZE_TEST = 128
    cfg.INPUT.MAX_SIZE_TEST = 128
    cfg.DATASETS.TEST = ("shapes_val",)
    path = folder / "config.yaml"
    path.write_text(cfg.dump())
    generate_shapes_dataset(str(folder / "shapes"), num_images=2, image_size=128, seed=3)
    images = sorted((folder / "shapes" / "images").glob("*.png"))
    return path, images


def test_demo_writes_pictures_of_random_weight_predictions(small_config, tmp_path):
    config, images = small_config
    torch.manual_seed(0)
    out = tmp_path / "one.png"
    rc = demo.cli(["--config-file", str(config), "--input", str(images[0]), "--output", str(out),
                   "--confidence-threshold", "0", "--device", "cpu"])
    assert rc == 0
    drawn = np.asarray(Image.open(out).convert("RGB"))
    source = np.asarray(Image.open(images[0]).convert("RGB"))
    assert drawn.shape == source.shape
    assert (drawn != source).any(), "nothing was drawn on the picture"

    # several inputs (a glob): one picture each in the output directory
    rc = demo.cli(["--config-file", str(config), "--input", str(images[0].parent / "*.png"),
                   "--output", str(tmp_path / "many"), "--device", "cpu"])
    assert rc == 0
    assert sorted(p.name for p in (tmp_path / "many").iterdir()) == [p.name for p in images]

    # the same file name in two folders: both pictures are kept
    other = tmp_path / "other"
    other.mkdir()
    (other / images[0].name).write_bytes(images[0].read_bytes())
    rc = demo.cli(["--config-file", str(config), "--input", str(images[0]), str(other / images[0].name),
                   "--output", str(tmp_path / "two"), "--device", "cpu"])
    assert rc == 0 and len(list((tmp_path / "two").iterdir())) == 2


def test_shapes_classes_are_known_for_a_train_shapes_config(small_config):
    config, _ = small_config
    args = demo.get_parser().parse_args(["--config-file", str(config), "--input", "x", "--output", "y"])
    cfg = demo.setup_cfg(args)
    assert demo._metadata(cfg).thing_classes == ["circle", "square", "triangle"]
    assert cfg.MODEL.DEVICE in ("cpu", "cuda")


def test_missing_input_is_one_line(small_config, tmp_path, capsys):
    config, _ = small_config
    rc = demo.cli(["--config-file", str(config), "--input", str(tmp_path / "nope.jpg"), "--output", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and "nope.jpg" in err and "no such file" in err and "\n" not in err


def test_unknown_config_is_one_line(tmp_path, capsys):
    rc = demo.cli(["--config-file", "NoSuch/config.yaml", "--input", __file__, "--output", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and "NoSuch/config.yaml" in err and "\n" not in err


def test_cuda_without_cuda_says_model_device_cpu(small_config, tmp_path, capsys, monkeypatch):
    config, images = small_config
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rc = demo.cli(["--config-file", str(config), "--input", str(images[0]), "--output", str(tmp_path / "o.png"),
                   "--device", "cuda"])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and "MODEL.DEVICE cpu" in err and "\n" not in err


def test_zoo_weights_offline_is_one_line_naming_the_url(tmp_path, capsys, monkeypatch):
    from iopath.common import download as iopath_download

    monkeypatch.setenv("FVCORE_CACHE", str(tmp_path / "cache"))

    def no_network(url, filename=None, reporthook=None):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(iopath_download.request, "urlretrieve", no_network)
    name = "COCO-Detection/retinanet_R_50_FPN_1x.yaml"
    image = tmp_path / "img.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(image)
    rc = demo.cli(["--config-file", name, "--input", str(image), "--output", str(tmp_path / "o.png"),
                   "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    # before it: only iopath's (empty) download progress bar
    assert rc == 1 and "Traceback" not in err
    line = err.splitlines()[-1]
    assert line.startswith("detectron2-demo: error: could not download")
    assert model_zoo.get_checkpoint_url(name) in line and str(tmp_path / "cache") in line
