"""Panoptic-DeepLab: target generator on a synthetic panoptic image against a direct
computation, post-processing recovering a known panoptic map from ideal predictions, the
dataset mapper on synthetic files, and the model from the shipped config training and
inferring on tiny inputs on CPU."""
import numpy as np
import pytest
import torch
from PIL import Image

from detectron2.config import get_cfg
from detectron2.data import MetadataCatalog
from detectron2.modeling import build_model
from detectron2.projects import get_project_config_file
from detectron2.projects.panoptic_deeplab import (
    PanopticDeepLabTargetGenerator,
    PanopticDeeplabDatasetMapper,
    add_panoptic_deeplab_config,
    get_panoptic_segmentation,
)
from detectron2.projects.panoptic_deeplab.post_processing import find_instance_center
from detectron2.utils.events import EventStorage

CFG = "Cityscapes-PanopticSegmentation/panoptic_deeplab_R_52_os16_mg124_poly_90k_bs32_crop_512_1024_dsconv.yaml"


def _synthetic_panoptic():
    """A 40x50 map: road stuff (id 1, class 0) everywhere, two cars (class 13), one
    crowd person region (class 11) and an unlabeled strip (id 0)."""
    pan = np.ones((40, 50), np.int64)
    pan[5:15, 5:20] = 2  # car 1
    pan[20:38, 25:45] = 3  # car 2
    pan[30:36, 2:8] = 4  # crowd
    pan[:, 48:] = 0  # unlabeled
    segs = [
        {"id": 1, "category_id": 0, "iscrowd": 0},
        {"id": 2, "category_id": 13, "iscrowd": 0},
        {"id": 3, "category_id": 13, "iscrowd": 0},
        {"id": 4, "category_id": 11, "iscrowd": 1},
    ]
    return pan, segs


@pytest.mark.parametrize("ignore_stuff_in_offset", [False, True])
def test_target_generator_matches_direct_computation(ignore_stuff_in_offset):
    pan, segs = _synthetic_panoptic()
    sigma = 2
    gen = PanopticDeepLabTargetGenerator(
        ignore_label=255, thing_ids=range(11, 19), sigma=sigma,
        ignore_stuff_in_offset=ignore_stuff_in_offset, small_instance_area=200, small_instance_weight=3,
    )
    t = gen(pan, segs)
    sem = np.full(pan.shape, 255)
    for s in segs:
        sem[pan == s["id"]] = s["category_id"]
    np.testing.assert_array_equal(t["sem_seg"].numpy(), sem)
    assert t["sem_seg"].dtype == torch.long
    # centers: mass centers of the two cars (the crowd region is a thing too)
    centers = []
    for sid in (2, 3, 4):
        ys, xs = np.nonzero(pan == sid)
        centers.append((ys.mean(), xs.mean()))
    np.testing.assert_allclose(np.array(t["center_points"]), np.array(centers))
    # heatmap: max over instances of the Gaussian around the rounded center, within
    # 3 sigma + 1 pixels in x and y, 0 elsewhere
    yy, xx = np.mgrid[0:40, 0:50]
    heat = np.zeros(pan.shape)
    for cy, cx in centers:
        cy, cx = int(round(cy)), int(round(cx))
        g = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
        inside = (abs(xx - cx) <= 3 * sigma + 1) & (abs(yy - cy) <= 3 * sigma + 1)
        heat = np.maximum(heat, np.where(inside, g, 0))
    np.testing.assert_allclose(t["center"].numpy(), heat, atol=1e-6)
    # offsets point from each thing pixel to its instance's center; 0 on stuff
    off = t["offset"].numpy()
    for sid, (cy, cx) in zip((2, 3, 4), centers):
        m = pan == sid
        np.testing.assert_allclose(off[0][m], (cy - yy)[m], atol=1e-4)
        np.testing.assert_allclose(off[1][m], (cx - xx)[m], atol=1e-4)
    assert (off[:, pan == 1] == 0).all()
    # weights: unlabeled and crowd ignored by the instance branch; stuff optional for offsets
    cw = t["center_weights"].numpy()[0]
    assert cw.shape == pan.shape
    np.testing.assert_array_equal(cw, np.isin(pan, [1, 2, 3]).astype(np.float32))
    ow = t["offset_weights"].numpy()[0]
    expect = np.isin(pan, [2, 3] if ignore_stuff_in_offset else [1, 2, 3])
    np.testing.assert_array_equal(ow, expect.astype(np.float32))
    # small instances (area < 200) weigh 3 in the semantic loss: car 1 (150 px), crowd (36 px)
    sw = t["sem_seg_weights"].numpy()
    np.testing.assert_array_equal(sw, np.where(np.isin(pan, [2, 4]), 3.0, 1.0))


def test_target_generator_crowd_can_be_ignored_in_semantic():
    pan, segs = _synthetic_panoptic()
    t = PanopticDeepLabTargetGenerator(255, range(11, 19), sigma=2, ignore_crowd_in_semantic=True)(pan, segs)
    assert (t["sem_seg"].numpy()[pan == 4] == 255).all()


def test_postprocessing_recovers_the_panoptic_map_from_ideal_predictions():
    pan, segs = _synthetic_panoptic()
    segs = segs[:3]  # no crowd
    pan[pan == 4] = 1
    t = PanopticDeepLabTargetGenerator(255, range(11, 19), sigma=2)(pan, segs)
    sem = t["sem_seg"].clone()
    sem[sem == 255] = 0
    panoptic, centers = get_panoptic_segmentation(
        sem[None], t["center"][None], t["offset"], thing_ids=range(11, 19), label_divisor=1000,
        stuff_area=10, void_label=-1, threshold=0.1, nms_kernel=7, top_k=200,
    )
    assert centers.shape == (1, 2, 2)
    p = panoptic[0].numpy()
    assert set(np.unique(p)) == {0, 13001, 13002}
    # each car becomes one segment (numbered in the order of its center)
    assert len(np.unique(p[pan == 2])) == 1 and len(np.unique(p[pan == 3])) == 1
    assert p[pan == 2][0] != p[pan == 3][0]
    assert (p[(pan == 1) | (pan == 0)] == 0).all()
    # stuff smaller than stuff_area is void
    panoptic, _ = get_panoptic_segmentation(sem[None], t["center"][None], t["offset"], range(11, 19), 1000, 10**6, -1)
    assert (panoptic[0].numpy()[pan == 1] == -1).all()
    with pytest.raises(ValueError, match="Semantic"):
        get_panoptic_segmentation(sem, t["center"][None], t["offset"], range(11, 19), 1000, 10, -1)


def test_find_instance_center_nms_threshold_and_top_k():
    heat = torch.zeros(1, 9, 9)
    heat[0, 2, 2], heat[0, 2, 3], heat[0, 6, 6], heat[0, 8, 0] = 0.9, 0.8, 0.5, 0.05
    assert find_instance_center(heat, threshold=0.1, nms_kernel=3).tolist() == [[2, 2], [6, 6]]
    assert find_instance_center(heat, threshold=0.1, nms_kernel=1).tolist() == [[2, 2], [2, 3], [6, 6]]
    # top_k keeps the centers above the k-th best score (upstream's strict comparison)
    assert find_instance_center(heat, threshold=0.1, nms_kernel=3, top_k=1).tolist() == []
    assert find_instance_center(heat, threshold=0.1, nms_kernel=3, top_k=2).tolist() == [[2, 2]]


def _cfg():
    cfg = get_cfg()
    add_panoptic_deeplab_config(cfg)
    cfg.merge_from_file(get_project_config_file("Panoptic-DeepLab", CFG))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.RESNETS.NORM = cfg.MODEL.SEM_SEG_HEAD.NORM = cfg.MODEL.INS_EMBED_HEAD.NORM = "BN"
    cfg.INPUT.CROP.SIZE = (64, 64)
    cfg.INPUT.MIN_SIZE_TRAIN = (64,)
    cfg.INPUT.MAX_SIZE_TRAIN = 128
    cfg.INPUT.GAUSSIAN_SIGMA = 2
    cfg.MODEL.PANOPTIC_DEEPLAB.STUFF_AREA = 16
    return cfg


def test_dataset_mapper_reads_and_generates_targets(tmp_path):
    pan, segs = _synthetic_panoptic()
    rgb = np.stack([pan % 256, pan // 256 % 256, pan // 65536], axis=-1).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "pan.png")
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(tmp_path / "img.png")
    cfg = _cfg()
    cfg.INPUT.CROP.ENABLED = False
    cfg.INPUT.MIN_SIZE_TRAIN = (40,)
    mapper = PanopticDeeplabDatasetMapper(cfg)
    d = {"file_name": str(tmp_path / "img.png"), "pan_seg_file_name": str(tmp_path / "pan.png"),
         "height": 40, "width": 50, "segments_info": segs}
    out = mapper(d)
    assert out["image"].shape == (3, 40, 50)
    assert "pan_seg_file_name" not in out and "pan_seg_file_name" in d
    assert out["sem_seg"].shape == (40, 50) and out["offset"].shape == (2, 40, 50)
    assert out["center_weights"].shape == (1, 40, 50)
    # the only augmentation left is a random flip: sem_seg is the map or its mirror
    sem = np.where(pan == 0, 255, np.select([pan == 1, np.isin(pan, [2, 3]), pan == 4], [0, 13, 11]))
    got = out["sem_seg"].numpy()
    assert np.array_equal(got, sem) or np.array_equal(got, sem[:, ::-1])


def test_panoptic_deeplab_trains_and_infers():
    torch.manual_seed(0)
    cfg = _cfg()
    model = build_model(cfg)
    assert type(model).__name__ == "PanopticDeepLab"
    gen = PanopticDeepLabTargetGenerator(255, list(MetadataCatalog.get(cfg.DATASETS.TRAIN[0]).thing_dataset_id_to_contiguous_id.values()), sigma=2)
    pan = np.ones((64, 64), np.int64)
    pan[10:30, 10:30] = 2
    pan[35:60, 30:60] = 3
    segs = [{"id": 1, "category_id": 0, "iscrowd": 0}, {"id": 2, "category_id": 13, "iscrowd": 0},
            {"id": 3, "category_id": 11, "iscrowd": 0}]
    inputs = []
    for _ in range(2):
        d = {"image": torch.rand(3, 64, 64) * 255}
        d.update(gen(pan, segs))
        inputs.append(d)
    model.train()
    with EventStorage():
        losses = model(inputs)
    assert set(losses) == {"loss_sem_seg", "loss_center", "loss_offset"}
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.ins_embed_head.center_predictor.weight.grad is not None
    model.eval()
    with torch.no_grad():
        out = model([{"image": inputs[0]["image"], "height": 64, "width": 64}])
    ps, info = out[0]["panoptic_seg"]
    assert info is None and ps.shape == (64, 64)
    assert out[0]["sem_seg"].shape == (19, 64, 64)
    labels = set(np.unique(ps.numpy()).tolist())
    assert all(l == -1 or 0 <= l // 1000 < 19 for l in labels)
    keys = {k for k in model.state_dict() if k.startswith("ins_embed_head.")}
    for k in ("ins_embed_head.center_head.0.weight", "ins_embed_head.offset_head.depthwise.weight",
              "ins_embed_head.center_predictor.weight", "ins_embed_head.offset_predictor.bias",
              "ins_embed_head.decoder.res5.project_conv.convs.0.weight"):
        assert k in keys
    assert "sem_seg_head.head.pointwise.weight" in model.state_dict()


def test_panoptic_deeplab_checks_depthwise_flags():
    cfg = _cfg()
    cfg.MODEL.PANOPTIC_DEEPLAB.USE_DEPTHWISE_SEPARABLE_CONV = False
    with pytest.raises(AssertionError, match="USE_DEPTHWISE_SEPARABLE_CONV"):
        build_model(cfg)
