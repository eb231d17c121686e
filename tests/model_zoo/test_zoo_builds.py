"""Every YAML config of the model zoo builds its model on CPU and runs inference on one
generated image, with test-time sizes shrunk through config overrides (no weights are
downloaded: MODEL.WEIGHTS is cleared). Configs with the same architecture share one
built model; tests are ordered so that only one model is alive at a time."""
import pathlib

import numpy as np
import pytest
import torch

from detectron2 import model_zoo
from detectron2.structures import Boxes, Instances

CONFIGS = pathlib.Path(__file__).resolve().parents[2] / "src" / "detectron2" / "model_zoo" / "configs"
IMAGE_H, IMAGE_W = 80, 100

# Small test-time settings: a 64-96 px input and few proposals / detections.
OVERRIDES = [
    "MODEL.DEVICE", "cpu",
    "MODEL.WEIGHTS", "",
    "INPUT.MIN_SIZE_TEST", 64,
    "INPUT.MAX_SIZE_TEST", 96,
    "MODEL.RPN.PRE_NMS_TOPK_TEST", 50,
    "MODEL.RPN.POST_NMS_TOPK_TEST", 20,
    "MODEL.RETINANET.TOPK_CANDIDATES_TEST", 50,
    "TEST.DETECTIONS_PER_IMAGE", 10,
    "MODEL.ROI_HEADS.SCORE_THRESH_TEST", 0.0,
    "MODEL.RETINANET.SCORE_THRESH_TEST", 0.0,
]


def _small_cfg(name):
    cfg = model_zoo.get_config(name)
    cfg.merge_from_list(list(OVERRIDES))
    return cfg


def _architecture_key(cfg):
    """Configs that differ only in training settings build the same model."""
    return cfg.MODEL.dump() + cfg.INPUT.dump() + str(cfg.TEST.DETECTIONS_PER_IMAGE)


# Sorted by architecture so that equal models are neighbours and one cache slot suffices.
_YAMLS = sorted(p.relative_to(CONFIGS).as_posix() for p in CONFIGS.rglob("*.yaml"))
_KEYS = {n: _architecture_key(_small_cfg(n)) for n in _YAMLS}
YAMLS = sorted(_YAMLS, key=lambda n: (_KEYS[n], n))
_cache = {}


def _model(name, cfg):
    key = _KEYS[name]
    if key not in _cache:
        from detectron2.modeling import build_model

        _cache.clear()  # frees the previous model first
        torch.manual_seed(0)
        _cache[key] = build_model(cfg).eval()
    return _cache[key]


def _image():
    """A BGR image with a few flat shapes on a gradient."""
    rng = np.random.RandomState(0)
    img = np.zeros((IMAGE_H, IMAGE_W, 3), dtype=np.float32)
    img += np.linspace(0, 120, IMAGE_W, dtype=np.float32)[None, :, None]
    img[10:40, 15:50] = (30, 200, 60)
    img[45:75, 55:95] = (220, 40, 180)
    img += rng.uniform(0, 10, img.shape).astype(np.float32)
    return torch.from_numpy(img.transpose(2, 0, 1).copy())


def _inputs(cfg):
    image = _image()
    if cfg.INPUT.FORMAT == "RGB":
        image = image.flip(0)
    # the model resizes nothing itself: give it an image already at the test size
    scale = cfg.INPUT.MIN_SIZE_TEST / min(IMAGE_H, IMAGE_W)
    h, w = int(round(IMAGE_H * scale)), int(round(IMAGE_W * scale))
    image = torch.nn.functional.interpolate(image[None], size=(h, w), mode="bilinear", align_corners=False)[0]
    inputs = {"image": image, "height": IMAGE_H, "width": IMAGE_W}
    if cfg.MODEL.LOAD_PROPOSALS:
        proposals = Instances((h, w))
        proposals.proposal_boxes = Boxes(torch.tensor([[5.0, 5.0, 40.0, 40.0], [30.0, 20.0, 70.0, 60.0]]))
        proposals.objectness_logits = torch.tensor([2.0, 1.0])
        inputs["proposals"] = proposals
    return [inputs]


def _check_instances(instances, cfg):
    assert isinstance(instances, Instances)
    assert instances.image_size == (IMAGE_H, IMAGE_W)
    n = len(instances)
    assert n <= cfg.TEST.DETECTIONS_PER_IMAGE
    assert instances.pred_boxes.tensor.shape == (n, 4)
    assert instances.scores.shape == (n,) and instances.pred_classes.shape == (n,)
    if n:
        assert torch.isfinite(instances.pred_boxes.tensor).all()
        assert int(instances.pred_classes.max()) < max(cfg.MODEL.ROI_HEADS.NUM_CLASSES, cfg.MODEL.RETINANET.NUM_CLASSES)
    if cfg.MODEL.MASK_ON and cfg.MODEL.META_ARCHITECTURE != "RetinaNet":
        assert instances.pred_masks.shape == (n, IMAGE_H, IMAGE_W)
    if cfg.MODEL.KEYPOINT_ON:
        assert instances.pred_keypoints.shape == (n, cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS, 3)


@pytest.mark.slow  # about 40 distinct models, up to ResNeXt-152: over a minute on 2 cores
@pytest.mark.parametrize("name", YAMLS)
def test_config_builds_and_runs_inference(name):
    cfg = _small_cfg(name)
    model = _model(name, cfg)
    with torch.no_grad():
        (out,) = model(_inputs(cfg))
    arch = cfg.MODEL.META_ARCHITECTURE
    if arch == "ProposalNetwork":
        proposals = out["proposals"]
        assert proposals.image_size == (IMAGE_H, IMAGE_W)
        assert 0 < len(proposals) <= cfg.MODEL.RPN.POST_NMS_TOPK_TEST
        assert proposals.objectness_logits.shape == (len(proposals),)
        return
    if arch in ("SemanticSegmentor", "PanopticFPN"):
        sem_seg = out["sem_seg"]
        assert sem_seg.shape == (cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES, IMAGE_H, IMAGE_W)
        assert torch.isfinite(sem_seg).all()
    if arch == "SemanticSegmentor":
        return
    _check_instances(out["instances"], cfg)
    if arch == "PanopticFPN":
        panoptic_seg, segments_info = out["panoptic_seg"]
        assert panoptic_seg.shape == (IMAGE_H, IMAGE_W)
        ids = set(torch.unique(panoptic_seg).tolist()) - {0}
        assert ids == {s["id"] for s in segments_info}
