"""Test-time augmentation: DatasetMapperTTA's copies and transforms, and
GeneralizedRCNNWithTTA on a tiny Mask R-CNN (toy backbone, random weights, CPU)."""
import numpy as np
import pytest
import torch
from rcnn_toys import toy_cfg

from detectron2.config import get_cfg
from detectron2.data import transforms as T
from detectron2.modeling import build_model
from detectron2.modeling.test_time_augmentation import DatasetMapperTTA, GeneralizedRCNNWithTTA
from detectron2.structures import Boxes, pairwise_iou

H, W = 48, 64


def _cfg(mask_on: bool = True):
    """Mask R-CNN on the RPN tests' toy backbone (p2, p3), tiny heads, 3 classes."""
    cfg = toy_cfg()
    cfg.MODEL.META_ARCHITECTURE = "GeneralizedRCNN"
    cfg.MODEL.MASK_ON = mask_on
    cfg.MODEL.ROI_HEADS.NAME = "StandardROIHeads"
    cfg.MODEL.ROI_HEADS.IN_FEATURES = ["p2", "p3"]
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 3
    cfg.MODEL.ROI_BOX_HEAD.NAME = "FastRCNNConvFCHead"
    cfg.MODEL.ROI_BOX_HEAD.NUM_FC = 1
    cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 16
    cfg.MODEL.ROI_MASK_HEAD.NAME = "MaskRCNNConvUpsampleHead"
    cfg.MODEL.ROI_MASK_HEAD.NUM_CONV = 1
    cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 8
    cfg.TEST.AUG.MIN_SIZES = (40, 56)
    cfg.TEST.AUG.MAX_SIZE = 200
    cfg.TEST.AUG.FLIP = True
    cfg.TEST.DETECTIONS_PER_IMAGE = 20
    return cfg


def _model(cfg):
    torch.manual_seed(0)
    model = build_model(cfg)
    model.eval()
    return model


def _image(h=H, w=W):
    rng = np.random.RandomState(0)
    img = rng.randint(0, 256, (h, w, 3)).astype(np.uint8)
    img[10:30, 12:40] = (250, 20, 20)
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


def test_mapper_tta_copies_and_transforms():
    mapper = DatasetMapperTTA(min_sizes=[24, 96], max_size=1000, flip=True)
    inputs = {"image": _image(), "height": H, "width": W, "file_name": "x.jpg"}
    outs = mapper(inputs)
    assert len(outs) == 4
    assert [tuple(o["image"].shape) for o in outs] == [(3, 24, 32), (3, 24, 32), (3, 96, 128), (3, 96, 128)]
    flips = [sum(isinstance(t, T.HFlipTransform) for t in o["transforms"].transforms) for o in outs]
    assert flips == [0, 1, 0, 1]
    box = np.array([[4.0, 6.0, 20.0, 30.0]])
    for o in outs:
        assert o["image"].dtype == torch.uint8 and o["file_name"] == "x.jpg"
        tfm = o["transforms"]
        np.testing.assert_allclose(tfm.inverse().apply_box(tfm.apply_box(box)), box, atol=1e-5)
    np.testing.assert_allclose(outs[1]["transforms"].apply_box(box), [[32 - 10, 3, 32 - 2, 15]])
    assert "transforms" not in inputs  # the input is not modified


def test_mapper_tta_starts_from_the_original_size():
    # The input image was already resized to half the wanted output size.
    mapper = DatasetMapperTTA(min_sizes=[48], max_size=1000, flip=False)
    (out,) = mapper({"image": _image(24, 32), "height": H, "width": W})
    assert tuple(out["image"].shape) == (3, 48, 64)
    np.testing.assert_allclose(out["transforms"].apply_box(np.array([[0.0, 0.0, 64.0, 48.0]])), [[0, 0, 64, 48]])


def test_mapper_tta_from_config():
    cfg = get_cfg()
    cfg.TEST.AUG.MIN_SIZES = (100, 200)
    cfg.TEST.AUG.MAX_SIZE = 300
    cfg.TEST.AUG.FLIP = False
    mapper = DatasetMapperTTA(cfg)
    assert list(mapper.min_sizes) == [100, 200] and mapper.max_size == 300 and not mapper.flip


def test_tta_single_copy_equals_plain_inference():
    cfg = _cfg(mask_on=True)
    cfg.TEST.AUG.MIN_SIZES = (56,)
    cfg.TEST.AUG.FLIP = False
    model = _model(cfg)
    tta = GeneralizedRCNNWithTTA(cfg, model)
    inputs = {"image": _image(), "height": H, "width": W}
    with torch.no_grad():
        got = tta([inputs])[0]["instances"]
        (copy,) = tta.tta_mapper(inputs)
        ref = model([{"image": copy["image"], "height": H, "width": W}])[0]["instances"]
    assert len(ref) > 0 and len(got) == len(ref)
    order_got = torch.argsort(got.scores, descending=True)
    order_ref = torch.argsort(ref.scores, descending=True)
    torch.testing.assert_close(got.scores[order_got], ref.scores[order_ref])
    torch.testing.assert_close(got.pred_boxes.tensor[order_got], ref.pred_boxes.tensor[order_ref], atol=1e-3, rtol=1e-4)
    assert torch.equal(got.pred_classes[order_got], ref.pred_classes[order_ref])
    assert got.pred_masks.shape == ref.pred_masks.shape == (len(ref), H, W)
    differ = (got.pred_masks[order_got] != ref.pred_masks[order_ref]).float().mean()
    assert differ < 0.01


@pytest.mark.parametrize("mask_on", [True, False])
def test_tta_outputs(mask_on, tmp_path):
    cfg = _cfg(mask_on=mask_on)
    model = _model(cfg)
    assert model.roi_heads.mask_on == mask_on
    tta = GeneralizedRCNNWithTTA(cfg, model, batch_size=3)
    with torch.no_grad():
        outs = tta([{"image": _image(), "height": 2 * H, "width": 2 * W}])
    inst = outs[0]["instances"]
    assert inst.image_size == (2 * H, 2 * W)
    assert len(inst) > 0
    boxes = inst.pred_boxes.tensor
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 2 * W).all() and (boxes[:, 3] <= 2 * H).all()
    assert inst.scores.dtype == torch.float32 and inst.pred_classes.dtype == torch.int64
    assert int(inst.pred_classes.max()) < 3
    assert len(inst) <= cfg.TEST.DETECTIONS_PER_IMAGE
    # No two kept boxes of one class overlap more than the NMS threshold.
    for c in inst.pred_classes.unique():
        b = Boxes(boxes[inst.pred_classes == c])
        iou = pairwise_iou(b, b).fill_diagonal_(0)
        assert float(iou.max()) <= cfg.MODEL.ROI_HEADS.NMS_THRESH_TEST + 1e-5
    if mask_on:
        assert inst.pred_masks.shape == (len(inst), 2 * H, 2 * W) and inst.pred_masks.dtype == torch.bool
    else:
        assert not inst.has("pred_masks")
    assert model.roi_heads.mask_on == mask_on  # restored after the box pass


def test_tta_reads_file_name(tmp_path):
    from PIL import Image

    cfg = _cfg(mask_on=False)
    model = _model(cfg)
    path = str(tmp_path / "img.png")
    Image.fromarray(_image().permute(1, 2, 0).numpy()[:, :, ::-1]).save(path)  # stored RGB, read as BGR
    tta = GeneralizedRCNNWithTTA(cfg, model)
    with torch.no_grad():
        from_file = tta([{"file_name": path}])[0]["instances"]
        from_tensor = tta([{"image": _image()}])[0]["instances"]
    assert from_file.image_size == (H, W)
    torch.testing.assert_close(from_file.pred_boxes.tensor, from_tensor.pred_boxes.tensor)


def test_tta_rejects_unsupported():
    cfg = _cfg()
    model = _model(cfg)
    with pytest.raises(TypeError, match="GeneralizedRCNN"):
        GeneralizedRCNNWithTTA(cfg, torch.nn.Linear(2, 2))
    cfg.MODEL.KEYPOINT_ON = True
    with pytest.raises(ValueError, match="KEYPOINT_ON"):
        GeneralizedRCNNWithTTA(cfg, model)
    cfg.MODEL.KEYPOINT_ON = False
    cfg.MODEL.LOAD_PROPOSALS = True
    with pytest.raises(ValueError, match="LOAD_PROPOSALS"):
        GeneralizedRCNNWithTTA(cfg, model)


@pytest.mark.cuda
def test_tta_on_cuda():
    device = torch.device("cuda")
    cfg = _cfg(mask_on=True)
    cfg.MODEL.DEVICE = "cuda"
    model = _model(cfg)
    tta = GeneralizedRCNNWithTTA(cfg, model)
    with torch.no_grad():
        inst = tta([{"image": _image(), "height": H, "width": W}])[0]["instances"]
    assert inst.pred_boxes.tensor.device.type == device.type
    assert inst.pred_masks.device.type == device.type
    assert inst.pred_masks.shape[1:] == (H, W) and len(inst) > 0
