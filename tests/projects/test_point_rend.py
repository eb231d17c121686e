"""PointRend: point sampling against grid_sample / hand-computed references, the point
selection rules, and the PointRend models built from the shipped configs training and
inferring on tiny inputs on CPU."""
import numpy as np
import pytest
import torch
from torch.nn import functional as F

from detectron2.config import get_cfg
from detectron2.modeling import build_model
from detectron2.projects import get_project_config_file
from detectron2.projects.point_rend import (
    ColorAugSSDTransform,
    add_pointrend_config,
    generate_regular_grid_point_coords,
    get_uncertain_point_coords_on_grid,
    get_uncertain_point_coords_with_randomness,
    point_sample,
    point_sample_fine_grained_features,
)
from detectron2.structures import BitMasks, Boxes, Instances
from detectron2.utils.events import EventStorage


def _bilinear_reference(img: np.ndarray, x: float, y: float) -> np.ndarray:
    """Bilinear value of a (C, H, W) map at continuous pixel coords, pixel centers at
    i + 0.5, zero outside: the align_corners=False convention, written out by hand."""
    C, H, W = img.shape
    px, py = x * W - 0.5, y * H - 0.5
    x0, y0 = int(np.floor(px)), int(np.floor(py))
    out = np.zeros(C)
    for dy in (0, 1):
        for dx in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            wgt = (1 - abs(px - xi)) * (1 - abs(py - yi))
            if 0 <= xi < W and 0 <= yi < H:
                out += wgt * img[:, yi, xi]
    return out


@pytest.mark.parametrize("seed", range(3))
def test_point_sample_matches_hand_bilinear_and_grid_sample(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, 5, 7, generator=g, dtype=torch.float64)
    pts = torch.rand(2, 11, 2, generator=g, dtype=torch.float64) * 1.2 - 0.1  # some outside
    out = point_sample(x, pts, align_corners=False)
    assert out.shape == (2, 3, 11)
    for n in range(2):
        for p in range(11):
            ref = _bilinear_reference(x[n].numpy(), *pts[n, p].tolist())
            np.testing.assert_allclose(out[n, :, p].numpy(), ref, atol=1e-12)
    # 4-d grids keep their spatial layout and equal grid_sample on [-1, 1] coordinates
    grid = torch.rand(2, 4, 6, 2, generator=g, dtype=torch.float64)
    ref = F.grid_sample(x, grid * 2 - 1, align_corners=False)
    torch.testing.assert_close(point_sample(x, grid, align_corners=False), ref)


def test_point_sample_rejects_bad_shapes():
    with pytest.raises(ValueError, match="point_coords"):
        point_sample(torch.zeros(1, 1, 4, 4), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="input"):
        point_sample(torch.zeros(1, 4, 4), torch.zeros(1, 3, 2))


def test_regular_grid_is_affine_grid_of_the_unit_square():
    for side in (1, 3, 7):
        ours = generate_regular_grid_point_coords(2, side, "cpu")
        # independent reference: affine_grid maps [-1, 1] to [0, 1] by x/2 + 1/2
        theta = torch.tensor([[[0.5, 0.0, 0.5], [0.0, 0.5, 0.5]]])
        ref = F.affine_grid(theta, [1, 1, side, side], align_corners=False).view(1, -1, 2)
        torch.testing.assert_close(ours, ref.expand(2, -1, -1))


def test_uncertain_points_on_grid_pick_the_top_cells():
    g = torch.Generator().manual_seed(0)
    u = torch.randn(3, 1, 6, 5, generator=g)
    idx, coords = get_uncertain_point_coords_on_grid(u, 7)
    for r in range(3):
        expect = set(torch.argsort(u[r, 0].flatten(), descending=True)[:7].tolist())
        assert set(idx[r].tolist()) == expect
        for i, (x, y) in zip(idx[r].tolist(), coords[r].tolist()):
            assert x == pytest.approx((i % 5 + 0.5) / 5) and y == pytest.approx((i // 5 + 0.5) / 6)
    idx, coords = get_uncertain_point_coords_on_grid(u, 1000)  # capped at H * W
    assert idx.shape == (3, 30)


def test_uncertain_points_with_randomness_keep_the_most_uncertain():
    torch.manual_seed(0)
    # uncertainty = -|logit| with logit = x - 0.5: points near x = 0.5 are uncertain
    logits = torch.linspace(-0.5, 0.5, 64).view(1, 1, 1, 64).expand(4, 1, 8, 64).contiguous()
    pts = get_uncertain_point_coords_with_randomness(logits, lambda l: -l.abs(), 20, 3, 0.75)
    assert pts.shape == (4, 20, 2)
    assert (pts >= 0).all() and (pts <= 1).all()
    # reference: replay the RNG: 60 candidates, the 15 most uncertain, then 5 fresh ones
    torch.manual_seed(0)
    cand = torch.rand(4, 60, 2)
    unc = -point_sample(logits, cand, align_corners=False)[:, 0].abs()
    fresh = torch.rand(4, 5, 2)
    for r in range(4):
        top = cand[r, torch.argsort(unc[r], descending=True)[:15]]
        assert {tuple(p) for p in pts[r, :15].tolist()} == {tuple(p) for p in top.tolist()}
    torch.testing.assert_close(pts[:, 15:], fresh)
    assert unc.gather(1, torch.argsort(unc, 1, descending=True)[:, :15]).min() >= unc.median()
    with pytest.raises(ValueError, match="oversample_ratio"):
        get_uncertain_point_coords_with_randomness(logits, lambda l: l, 4, 0.5, 0.5)


def test_fine_grained_features_equal_sampling_in_image_coordinates():
    g = torch.Generator().manual_seed(1)
    feats = [torch.randn(2, 3, 8, 10, generator=g), torch.randn(2, 2, 4, 5, generator=g)]
    boxes = [Boxes(torch.tensor([[4.0, 2.0, 30.0, 20.0]])), Boxes(torch.tensor([[0.0, 0.0, 40.0, 32.0], [8, 8, 16, 24.0]]))]
    pts = torch.rand(3, 6, 2, generator=g)
    out, wrt_image = point_sample_fine_grained_features(feats, [1 / 4, 1 / 8], boxes, pts)
    assert out.shape == (3, 5, 6)
    allb = torch.cat([b.tensor for b in boxes])
    torch.testing.assert_close(wrt_image, allb[:, None, :2] + pts * (allb[:, None, 2:] - allb[:, None, :2]))
    img_of_box = [0, 1, 1]
    for r in range(3):
        for p in range(6):
            x, y = wrt_image[r, p].tolist()
            ref = np.concatenate([
                _bilinear_reference(feats[0][img_of_box[r]].numpy(), x / 40, y / 32),
                _bilinear_reference(feats[1][img_of_box[r]].numpy(), x / 40, y / 32),
            ])
            np.testing.assert_allclose(out[r, :, p].numpy(), ref, atol=1e-5)


def test_color_aug_ssd_keeps_geometry_and_dtype():
    import random

    random.seed(0)
    img = np.random.RandomState(0).randint(0, 256, (12, 9, 3), dtype=np.uint8)
    t = ColorAugSSDTransform("RGB")
    outs = [t.apply_image(img) for _ in range(8)]
    assert all(o.shape == img.shape and o.dtype == np.uint8 for o in outs)
    assert any(not np.array_equal(o, img) for o in outs)
    seg = np.arange(12 * 9).reshape(12, 9)
    assert t.apply_segmentation(seg) is seg
    with pytest.raises(ValueError, match="img_format"):
        ColorAugSSDTransform("YUV")


# ------------------------------------------------------------------ whole models


def _cfg(path: str):
    cfg = get_cfg()
    add_pointrend_config(cfg)
    cfg.merge_from_file(get_project_config_file("PointRend", path))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.RESNETS.DEPTH = 18  # a small backbone keeps the test fast; heads are the real ones
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.FPN.OUT_CHANNELS = 32
    cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 32
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 32
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = 50
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 20
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0
    cfg.TEST.DETECTIONS_PER_IMAGE = 4
    cfg.MODEL.POINT_HEAD.TRAIN_NUM_POINTS = 49
    return cfg


def _instance_inputs(num_classes: int):
    inputs = []
    for h, w in ((64, 96), (80, 64)):
        masks = torch.zeros(2, h, w, dtype=torch.bool)
        masks[0, 8:40, 10:50] = True
        masks[1, 30:60, 20:40] = True
        inst = Instances((h, w))
        inst.gt_masks = BitMasks(masks)
        inst.gt_boxes = inst.gt_masks.get_bounding_boxes()
        inst.gt_classes = torch.tensor([0, num_classes - 1])
        inputs.append({"image": torch.rand(3, h, w) * 255, "instances": inst})
    return inputs


@pytest.mark.parametrize(
    "path", ["InstanceSegmentation/pointrend_rcnn_R_50_FPN_1x_coco.yaml", "InstanceSegmentation/implicit_pointrend_R_50_FPN_1x_coco.yaml"]
)
def test_instance_pointrend_trains_and_infers(path):
    torch.manual_seed(0)
    cfg = _cfg(path)
    if "implicit" in path:
        cfg.MODEL.POINT_HEAD.SUBDIVISION_NUM_POINTS = 196
    model = build_model(cfg)
    inputs = _instance_inputs(cfg.MODEL.ROI_HEADS.NUM_CLASSES)
    model.train()
    with EventStorage():
        losses = model(inputs)
    expect = {"loss_mask_point", "loss_cls", "loss_box_reg", "loss_rpn_cls", "loss_rpn_loc"}
    expect |= {"loss_l2"} if "implicit" in path else {"loss_mask"}
    assert expect <= set(losses)
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    head = model.roi_heads.mask_head
    assert head.point_head is not None
    grads = [p.grad for p in head.point_head.parameters() if p.requires_grad]
    if "implicit" not in path:
        assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)

    model.eval()
    with torch.no_grad():
        out = model([{"image": x["image"]} for x in inputs])
    for o, x in zip(out, inputs):
        inst = o["instances"]
        assert inst.pred_masks.shape[1:] == x["image"].shape[1:]
        assert len(inst) > 0


def test_pointrend_mask_head_subdivision_resolution_and_keys():
    cfg = _cfg("InstanceSegmentation/pointrend_rcnn_R_50_FPN_1x_coco.yaml")
    model = build_model(cfg)
    head = model.roi_heads.mask_head
    # 7 -> 14 -> 28 (28*28 = SUBDIVISION_NUM_POINTS): two steps are skipped, 3 remain
    assert head.mask_point_subdivision_init_resolution == 28
    assert head.mask_point_subdivision_steps == 3
    keys = {k for k in model.state_dict() if k.startswith("roi_heads.mask_head.")}
    # upstream's checkpoint keys of the PointRend mask head (p2 has FPN channels 32 < 256,
    # so no channel-reducing conv)
    assert keys == {
        "roi_heads.mask_head.point_head.fc1.weight", "roi_heads.mask_head.point_head.fc1.bias",
        "roi_heads.mask_head.point_head.fc2.weight", "roi_heads.mask_head.point_head.fc2.bias",
        "roi_heads.mask_head.point_head.fc3.weight", "roi_heads.mask_head.point_head.fc3.bias",
        "roi_heads.mask_head.point_head.predictor.weight", "roi_heads.mask_head.point_head.predictor.bias",
        "roi_heads.mask_head.coarse_head.reduce_spatial_dim_conv.weight",
        "roi_heads.mask_head.coarse_head.reduce_spatial_dim_conv.bias",
        "roi_heads.mask_head.coarse_head.fc1.weight", "roi_heads.mask_head.coarse_head.fc1.bias",
        "roi_heads.mask_head.coarse_head.fc2.weight", "roi_heads.mask_head.coarse_head.fc2.bias",
        "roi_heads.mask_head.coarse_head.prediction.weight", "roi_heads.mask_head.coarse_head.prediction.bias",
    }
    sd = model.state_dict()
    # point MLP: (256 + 80) -> 256, then (256 + 80) -> 256 twice, then 80 classes
    assert sd["roi_heads.mask_head.point_head.fc1.weight"].shape == (256, 32 + 80, 1)
    assert sd["roi_heads.mask_head.point_head.fc2.weight"].shape == (256, 256 + 80, 1)
    assert sd["roi_heads.mask_head.point_head.predictor.weight"].shape == (80, 256 + 80, 1)
    # coarse head: 2x2 stride-2 conv on 14x14 -> 7x7, fc 1024, 1024, 80 * 7 * 7
    assert sd["roi_heads.mask_head.coarse_head.fc1.weight"].shape == (1024, 32 * 7 * 7)
    assert sd["roi_heads.mask_head.coarse_head.prediction.weight"].shape == (80 * 7 * 7, 1024)


def test_pointrend_mask_head_rejects_a_pooler():
    cfg = _cfg("InstanceSegmentation/pointrend_rcnn_R_50_FPN_1x_coco.yaml")
    cfg.MODEL.ROI_MASK_HEAD.POOLER_TYPE = "ROIAlignV2"
    with pytest.raises(TypeError, match="POOLER_TYPE"):
        build_model(cfg)
    cfg = _cfg("InstanceSegmentation/pointrend_rcnn_R_50_FPN_1x_coco.yaml")
    cfg.MODEL.POINT_HEAD.NUM_CLASSES = 3
    with pytest.raises(AssertionError, match="NUM_CLASSES"):
        build_model(cfg)


def test_semantic_pointrend_trains_and_infers():
    torch.manual_seed(0)
    cfg = _cfg("SemanticSegmentation/pointrend_semantic_R_101_FPN_1x_cityscapes.yaml")
    cfg.MODEL.POINT_HEAD.TRAIN_NUM_POINTS = 64
    cfg.MODEL.POINT_HEAD.SUBDIVISION_NUM_POINTS = 100
    model = build_model(cfg)
    g = torch.Generator().manual_seed(0)
    inputs = [
        {"image": torch.rand(3, 64, 96, generator=g) * 255, "sem_seg": torch.randint(0, 19, (64, 96), generator=g)}
        for _ in range(2)
    ]
    inputs[0]["sem_seg"][:10] = 255  # ignored pixels
    model.train()
    with EventStorage():
        losses = model(inputs)
    assert set(losses) == {"loss_sem_seg", "loss_sem_seg_point"}
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())
    model.eval()
    with torch.no_grad():
        out = model([{"image": x["image"], "height": 32, "width": 48} for x in inputs])
    assert out[0]["sem_seg"].shape == (19, 32, 48)


def test_implicit_point_head_is_a_per_instance_mlp():
    from detectron2.layers import ShapeSpec
    from detectron2.projects.point_rend import ImplicitPointHead

    cfg = get_cfg()
    add_pointrend_config(cfg)
    cfg.MODEL.POINT_HEAD.NUM_FC, cfg.MODEL.POINT_HEAD.FC_DIM, cfg.MODEL.POINT_HEAD.NUM_CLASSES = 2, 8, 3
    torch.manual_seed(0)
    head = ImplicitPointHead(cfg, ShapeSpec(channels=5))
    assert head.in_channels == 5 + 256
    # weights of layers (in -> 8, 8 -> 8, 8 -> 3) first, then their biases
    assert head.num_params == 261 * 8 + 8 * 8 + 8 * 3 + 8 + 8 + 3
    R, P = 2, 7
    fine = torch.randn(R, 5, P, dtype=torch.float64)
    coords = torch.rand(R, P, 2, dtype=torch.float64)
    params = torch.randn(R, head.num_params, dtype=torch.float64)
    head = head.double()
    out = head(fine, coords, params)
    assert out.shape == (R, 3, P)
    g = head.positional_encoding_gaussian_matrix
    sizes = [261 * 8, 8 * 8, 8 * 3, 8, 8, 3]
    for r in range(R):
        chunks = torch.split(params[r], sizes)
        shapes = [(8, 261), (8, 8), (3, 8)]
        proj = 2 * np.pi * ((2 * coords[r] - 1) @ g)  # (P, 128)
        x = torch.cat([torch.sin(proj), torch.cos(proj)], dim=1).T  # (256, P)
        x = torch.cat([x, fine[r]], dim=0)
        for i in range(3):
            x = chunks[i].view(shapes[i]) @ x + chunks[3 + i].view(-1, 1)
            if i < 2:
                x = torch.relu(x)
        torch.testing.assert_close(out[r], x)
    with pytest.raises(ValueError, match="parameters"):
        head(fine, coords, params[:, :-1])


def test_pointrend_roi_heads_convert_old_configs_and_weights():
    cfg = _cfg("InstanceSegmentation/pointrend_rcnn_R_50_FPN_1x_coco.yaml")
    cfg.MODEL.ROI_HEADS.NAME = "PointRendROIHeads"
    cfg.MODEL.ROI_MASK_HEAD.NAME = "CoarseMaskHead"  # the old name
    cfg.MODEL.ROI_MASK_HEAD.POOLER_TYPE = "ROIAlignV2"
    model = build_model(cfg)
    assert type(model.roi_heads.mask_head).__name__ == "PointRendMaskHead"
    sd = model.roi_heads.state_dict()
    # an old checkpoint: mask_point_head / mask_coarse_head, coarse fc named coarse_mask_fc
    old = {}
    for k, v in sd.items():
        k = k.replace("mask_head.point_head", "mask_point_head").replace("mask_head.coarse_head.fc", "mask_coarse_head.coarse_mask_fc")
        old[k.replace("mask_head.coarse_head", "mask_coarse_head")] = torch.randn_like(v) if v.is_floating_point() else v
    from collections import OrderedDict

    old = OrderedDict(old)
    old._metadata = OrderedDict()  # no versions: the oldest layout
    incompatible = model.roi_heads.load_state_dict(old, strict=True)
    assert not incompatible.missing_keys and not incompatible.unexpected_keys
    new_fc1 = model.roi_heads.mask_head.coarse_head.fc1.weight
    torch.testing.assert_close(new_fc1, old["mask_coarse_head.coarse_mask_fc1.weight"])
