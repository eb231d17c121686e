"""The model zoo: every upstream config name is shipped and merges into get_cfg(), the
hyperparameters of the standard models are upstream's, checkpoint URLs follow upstream's
scheme, and missing configs, missing checkpoints and failed downloads raise clear errors."""
import pathlib
import re
import shutil
import subprocess
import sys
import urllib.error

import pytest
import torch
import yaml

from detectron2 import model_zoo
from detectron2.config import CfgNode
from detectron2.model_zoo import model_zoo as zoo_impl
from detectron2.utils.file_io import PathManager

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "src" / "detectron2" / "model_zoo" / "configs"
# Upstream's config file names (names only), committed as test data.
UPSTREAM_NAMES = pathlib.Path(__file__).parent / "data" / "upstream_config_names.txt"
YAMLS = sorted(p.relative_to(CONFIGS).as_posix() for p in CONFIGS.rglob("*.yaml"))
URL_RE = re.compile(r"^https://dl\.fbaipublicfiles\.com/detectron2/[\w.\-/]+/\d+/model_\w+\.pkl$")


def test_every_upstream_yaml_name_is_shipped():
    assert UPSTREAM_NAMES.is_file(), f"test data missing: {UPSTREAM_NAMES}"
    names = [n.strip() for n in UPSTREAM_NAMES.read_text().splitlines() if n.strip() and not n.startswith("#")]
    upstream_yamls = [n for n in names if n.endswith(".yaml")]
    assert len(upstream_yamls) == 92 and len(YAMLS) == 92
    missing = [n for n in upstream_yamls if n not in YAMLS]
    assert not missing, missing


@pytest.mark.parametrize("name", YAMLS)
def test_yaml_merges_into_default_config(name):
    # merge_from_file raises KeyError for any key get_cfg() does not have
    cfg = model_zoo.get_config(name)
    assert isinstance(cfg, CfgNode)
    assert cfg.VERSION == 2
    assert cfg.MODEL.WEIGHTS == "" or cfg.MODEL.WEIGHTS.startswith(("detectron2://", "catalog://"))


@pytest.mark.parametrize("name", YAMLS)
def test_base_chain_resolves_inside_the_zoo(name):
    path, seen = CONFIGS / name, []
    while True:
        seen.append(path.resolve())
        base = yaml.safe_load(path.read_text()).get("_BASE_")
        if base is None:
            break
        path = (path.parent / base).resolve()
        assert path.is_file(), f"{name}: _BASE_ {base} does not exist"
        assert CONFIGS.resolve() in path.parents, f"{name}: _BASE_ {base} leaves the zoo"
        assert path not in seen, f"{name}: _BASE_ cycle"
    assert seen[-1].name.startswith("Base-"), f"{name} does not end at a Base-*.yaml"


def _cfg(name):
    return model_zoo.get_config(name)


def test_mask_rcnn_r50_fpn_3x_is_upstreams():
    cfg = _cfg("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml")
    assert cfg.SOLVER.STEPS == (210000, 250000)
    assert cfg.SOLVER.MAX_ITER == 270000
    assert cfg.SOLVER.BASE_LR == 0.02
    assert cfg.SOLVER.IMS_PER_BATCH == 16
    assert cfg.MODEL.MASK_ON and not cfg.MODEL.KEYPOINT_ON
    assert cfg.MODEL.META_ARCHITECTURE == "GeneralizedRCNN"
    assert cfg.MODEL.BACKBONE.NAME == "build_resnet_fpn_backbone"
    assert cfg.MODEL.RESNETS.DEPTH == 50
    assert cfg.MODEL.RESNETS.OUT_FEATURES == ["res2", "res3", "res4", "res5"]
    assert cfg.MODEL.ANCHOR_GENERATOR.SIZES == [[32], [64], [128], [256], [512]]
    assert cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS == [[0.5, 1.0, 2.0]]
    assert cfg.MODEL.RPN.IN_FEATURES == ["p2", "p3", "p4", "p5", "p6"]
    assert (cfg.MODEL.RPN.PRE_NMS_TOPK_TRAIN, cfg.MODEL.RPN.PRE_NMS_TOPK_TEST) == (2000, 1000)
    assert (cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN, cfg.MODEL.RPN.POST_NMS_TOPK_TEST) == (1000, 1000)
    assert cfg.MODEL.ROI_HEADS.NAME == "StandardROIHeads"
    assert cfg.MODEL.ROI_HEADS.IN_FEATURES == ["p2", "p3", "p4", "p5"]
    assert (cfg.MODEL.ROI_BOX_HEAD.NUM_FC, cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION) == (2, 7)
    assert (cfg.MODEL.ROI_MASK_HEAD.NUM_CONV, cfg.MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION) == (4, 14)
    assert cfg.INPUT.MIN_SIZE_TRAIN == (640, 672, 704, 736, 768, 800)
    assert cfg.DATASETS.TRAIN == ("coco_2017_train",) and cfg.DATASETS.TEST == ("coco_2017_val",)
    assert cfg.MODEL.WEIGHTS == "detectron2://ImageNetPretrained/MSRA/R-50.pkl"


def test_1x_schedule_and_c4_dc5_layouts():
    cfg = _cfg("COCO-Detection/faster_rcnn_R_50_C4_1x.yaml")
    assert (cfg.SOLVER.STEPS, cfg.SOLVER.MAX_ITER) == ((60000, 80000), 90000)
    assert cfg.MODEL.ROI_HEADS.NAME == "Res5ROIHeads" and not cfg.MODEL.MASK_ON
    assert (cfg.MODEL.RPN.PRE_NMS_TOPK_TEST, cfg.MODEL.RPN.POST_NMS_TOPK_TEST) == (6000, 1000)
    cfg = _cfg("COCO-Detection/faster_rcnn_R_101_DC5_3x.yaml")
    assert cfg.MODEL.RESNETS.RES5_DILATION == 2 and cfg.MODEL.RESNETS.OUT_FEATURES == ["res5"]
    assert cfg.MODEL.RESNETS.DEPTH == 101 and cfg.MODEL.WEIGHTS.endswith("MSRA/R-101.pkl")


def test_retinanet_and_x101():
    cfg = _cfg("COCO-Detection/retinanet_R_50_FPN_1x.yaml")
    assert cfg.MODEL.META_ARCHITECTURE == "RetinaNet" and cfg.SOLVER.BASE_LR == 0.01
    sizes = cfg.MODEL.ANCHOR_GENERATOR.SIZES
    expected = [[x * 2 ** (k / 3) for k in range(3)] for x in (32, 64, 128, 256, 512)]
    assert len(sizes) == 5 and all(s == pytest.approx(e) for s, e in zip(sizes, expected))
    assert cfg.MODEL.RETINANET.SMOOTH_L1_LOSS_BETA == 0.0
    cfg = _cfg("COCO-InstanceSegmentation/mask_rcnn_X_101_32x8d_FPN_3x.yaml")
    r = cfg.MODEL.RESNETS
    assert (r.NUM_GROUPS, r.WIDTH_PER_GROUP, r.DEPTH, r.STRIDE_IN_1X1) == (32, 8, 101, False)
    assert cfg.MODEL.PIXEL_STD == [57.375, 57.120, 58.395]


def test_keypoint_panoptic_lvis_cityscapes_voc():
    cfg = _cfg("COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x.yaml")
    assert cfg.MODEL.KEYPOINT_ON and cfg.MODEL.ROI_HEADS.NUM_CLASSES == 1
    assert cfg.MODEL.ROI_BOX_HEAD.SMOOTH_L1_BETA == 0.5 and cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN == 1500
    assert cfg.DATASETS.TRAIN == ("keypoints_coco_2017_train",)
    cfg = _cfg("COCO-PanopticSegmentation/panoptic_fpn_R_101_3x.yaml")
    assert cfg.MODEL.META_ARCHITECTURE == "PanopticFPN" and cfg.MODEL.SEM_SEG_HEAD.LOSS_WEIGHT == 0.5
    assert not cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS
    cfg = _cfg("LVISv1-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml")
    assert cfg.MODEL.ROI_HEADS.NUM_CLASSES == 1203 and cfg.TEST.DETECTIONS_PER_IMAGE == 300
    assert (cfg.SOLVER.STEPS, cfg.SOLVER.MAX_ITER) == ((120000, 160000), 180000)
    assert cfg.DATALOADER.SAMPLER_TRAIN == "RepeatFactorTrainingSampler"
    assert _cfg("LVISv0.5-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml").MODEL.ROI_HEADS.NUM_CLASSES == 1230
    cfg = _cfg("Cityscapes/mask_rcnn_R_50_FPN.yaml")
    assert cfg.MODEL.ROI_HEADS.NUM_CLASSES == 8 and cfg.SOLVER.IMS_PER_BATCH == 8
    assert (cfg.SOLVER.STEPS, cfg.SOLVER.MAX_ITER, cfg.INPUT.MAX_SIZE_TEST) == ((18000,), 24000, 2048)
    cfg = _cfg("PascalVOC-Detection/faster_rcnn_R_50_FPN.yaml")
    assert cfg.MODEL.ROI_HEADS.NUM_CLASSES == 20 and cfg.SOLVER.MAX_ITER == 18000
    assert cfg.DATASETS.TRAIN == ("voc_2007_trainval", "voc_2012_trainval")


def test_misc_and_detectron1_settings():
    cfg = _cfg("Misc/cascade_mask_rcnn_R_50_FPN_3x.yaml")
    assert cfg.MODEL.ROI_HEADS.NAME == "CascadeROIHeads" and cfg.MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG
    cfg = _cfg("Misc/scratch_mask_rcnn_R_50_FPN_9x_gn.yaml")
    assert cfg.MODEL.WEIGHTS == "" and cfg.MODEL.BACKBONE.FREEZE_AT == 0 and cfg.MODEL.RESNETS.NORM == "GN"
    assert (cfg.SOLVER.MAX_ITER, cfg.SOLVER.IMS_PER_BATCH, cfg.SOLVER.BASE_LR) == (202500, 64, 0.08)
    cfg = _cfg("Misc/mask_rcnn_R_50_FPN_3x_dconv_c3-c5.yaml")
    assert cfg.MODEL.RESNETS.DEFORM_ON_PER_STAGE == [False, True, True, True]
    cfg = _cfg("Detectron1-Comparisons/mask_rcnn_R_50_FPN_noaug_1x.yaml")
    assert cfg.INPUT.MIN_SIZE_TRAIN == (800,) and cfg.MODEL.ROI_MASK_HEAD.POOLER_TYPE == "ROIAlign"
    assert cfg.MODEL.RPN.SMOOTH_L1_BETA == 0.1111


def test_configs_are_inside_a_built_wheel(tmp_path):
    """A wheel built from the checkout's sources and pyproject.toml (the extension left
    out: it does not change what data files are packaged) carries every config."""
    checkout = tmp_path / "checkout"
    shutil.copytree(ROOT / "src", checkout / "src", ignore=shutil.ignore_patterns("*.so", "__pycache__", "build"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, checkout / name)
    # setup.py gives the license (dynamic in pyproject.toml: SPDX for setuptools >= 77, free text before)
    built = subprocess.run([sys.executable, "-c", "from setuptools import setup; setup(license_expression='Apache-2.0')",
                            "-q", "bdist_wheel",
                            "-d", str(tmp_path / "dist")], cwd=checkout, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    import zipfile

    (wheel,) = (tmp_path / "dist").glob("*.whl")
    prefix = "detectron2/model_zoo/configs/"
    inside = {n[len(prefix):] for n in zipfile.ZipFile(wheel).namelist() if n.startswith(prefix)}
    assert set(YAMLS) <= inside
    assert {"common/train.py", "common/models/mask_rcnn_fpn.py", "common/data/constants.py"} <= inside
    assert "detectron2/model_zoo/model_zoo.py" in zipfile.ZipFile(wheel).namelist()


def test_checkpoint_urls_follow_upstreams_scheme():
    url = model_zoo.get_checkpoint_url("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml")
    assert url == ("https://dl.fbaipublicfiles.com/detectron2/COCO-InstanceSegmentation/"
                   "mask_rcnn_R_50_FPN_3x/137849600/model_final_f10217.pkl")
    assert model_zoo.get_checkpoint_url("COCO-Detection/faster_rcnn_R_50_FPN_1x") == (
        "https://dl.fbaipublicfiles.com/detectron2/COCO-Detection/faster_rcnn_R_50_FPN_1x/137257794/model_final_b275ba.pkl")
    for name in zoo_impl._CHECKPOINTS:
        url = model_zoo.get_checkpoint_url(name + (".py" if name.startswith("new_baselines") else ".yaml"))
        assert URL_RE.match(url), url
        assert f"/{name}/" in url
        if not name.startswith("new_baselines"):
            assert (CONFIGS / (name + ".yaml")).is_file(), name


def test_trained_config_points_at_the_checkpoint():
    cfg = model_zoo.get_config("COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x.yaml", trained=True)
    assert cfg.MODEL.WEIGHTS == model_zoo.get_checkpoint_url("COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x.yaml")
    # the quick-schedule inference tests point at the same published files
    cfg = model_zoo.get_config("quick_schedules/mask_rcnn_R_50_FPN_inference_acc_test.yaml")
    assert cfg.MODEL.WEIGHTS.replace("detectron2://", "https://dl.fbaipublicfiles.com/detectron2/") == \
        model_zoo.get_checkpoint_url("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml")


def test_config_without_checkpoint_says_so():
    with pytest.raises(RuntimeError, match="LVISv1-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml.*no published checkpoint"):
        model_zoo.get_checkpoint_url("LVISv1-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml")
    with pytest.raises(RuntimeError, match="no published checkpoint"):
        model_zoo.get_config("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x_giou.yaml", trained=True)


def test_missing_config_names_the_path_and_near_matches():
    with pytest.raises(RuntimeError) as e:
        model_zoo.get_config_file("COCO-Detection/faster_rcnn_R_50_FPN_2x.yaml")
    msg = str(e.value)
    assert "COCO-Detection/faster_rcnn_R_50_FPN_2x.yaml" in msg
    assert "COCO-Detection/faster_rcnn_R_50_FPN_1x.yaml" in msg and "faster_rcnn_R_50_FPN_3x.yaml" in msg
    with pytest.raises(RuntimeError, match="not available in Model Zoo"):
        model_zoo.get_config("no/such.yaml")


def test_get_config_file_is_a_file_in_the_package():
    path = pathlib.Path(model_zoo.get_config_file("Base-RCNN-FPN.yaml"))
    assert path.is_file() and path.parent.name == "configs" and path.parent.parent.name == "model_zoo"


class _Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(2, 2)


def test_get_offline_raises_a_clear_error_naming_the_url(monkeypatch):
    built = []
    monkeypatch.setattr(zoo_impl, "_build_model", lambda cfg: built.append(cfg.MODEL.DEVICE) or _Tiny())

    def offline(path, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(PathManager, "get_local_path", offline)
    name = "COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml"
    with pytest.raises(RuntimeError) as e:
        model_zoo.get(name, trained=True, device="cpu")
    assert model_zoo.get_checkpoint_url(name) in str(e.value)
    assert "name resolution" in str(e.value)
    assert built == ["cpu"]


def test_get_offline_download_error_is_one_line_naming_the_url_and_the_cache_path(monkeypatch, tmp_path):
    """The real http handler offline: urlretrieve fails as it does without a network."""
    from iopath.common import download as iopath_download

    monkeypatch.setattr(zoo_impl, "_build_model", lambda cfg: _Tiny())
    monkeypatch.setenv("FVCORE_CACHE", str(tmp_path))

    def no_network(url, filename=None, reporthook=None):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(iopath_download.request, "urlretrieve", no_network)
    name = "COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml"
    url = model_zoo.get_checkpoint_url(name)
    with pytest.raises(OSError) as e:
        model_zoo.get(name, trained=True, device="cpu")
    message = str(e.value)
    assert "\n" not in message and url in message and "name resolution" in message
    cached = tmp_path / url[len("https://"):].split("/", 1)[1]
    assert str(cached) in message
    assert e.value.__cause__ is None and e.value.__suppress_context__


def test_get_defaults_to_cpu_without_cuda_and_loads_local_weights(monkeypatch, tmp_path):
    seen = []
    monkeypatch.setattr(zoo_impl, "_build_model", lambda cfg: seen.append(cfg.MODEL.DEVICE) or _Tiny())
    weights = tmp_path / "w.pth"
    state = {"fc.weight": torch.full((2, 2), 3.0), "fc.bias": torch.zeros(2)}
    torch.save({"model": state}, weights)
    monkeypatch.setattr(zoo_impl, "get_checkpoint_url", lambda path: str(weights))
    model = model_zoo.get("COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml", trained=True)
    assert torch.equal(model.fc.weight, state["fc.weight"])
    assert seen == (["cuda"] if torch.cuda.is_available() else ["cpu"])


def test_python_lazy_configs_load_and_build(monkeypatch, tmp_path):
    # The zoo ships no LazyConfig yet; the .py path of the API is checked on a tiny one.
    (tmp_path / "configs" / "toy").mkdir(parents=True)
    (tmp_path / "configs" / "toy" / "linear.py").write_text(
        "import torch\n"
        "from detectron2.config import LazyCall as L\n"
        "from omegaconf import OmegaConf\n"
        "model = L(torch.nn.Linear)(in_features=2, out_features=3)\n"
        "train = OmegaConf.create(dict(init_checkpoint=''))\n"
    )
    monkeypatch.setattr(zoo_impl, "_configs_root", lambda: tmp_path / "configs")
    weights = tmp_path / "linear.pth"
    torch.save({"model": {"weight": torch.ones(3, 2), "bias": torch.zeros(3)}}, weights)
    monkeypatch.setattr(zoo_impl, "get_checkpoint_url", lambda path: str(weights))
    cfg = model_zoo.get_config("toy/linear.py", trained=True)
    assert cfg.train.init_checkpoint == str(weights)
    model = model_zoo.get("toy/linear.py", trained=True, device="cpu")
    assert isinstance(model, torch.nn.Linear) and torch.equal(model.weight, torch.ones(3, 2))


def test_shipped_lazy_config_loads():
    cfg = model_zoo.get_config("common/train.py")
    assert cfg.train.max_iter == 90000 and cfg.train.init_checkpoint == ""
    assert cfg.train.checkpointer.period == 5000
    constants = model_zoo.get_config("common/data/constants.py").constants
    assert list(constants.imagenet_bgr256_mean) == [103.530, 116.280, 123.675]
