import pytest
import torch
import torchvision

from detectron2.layers import ROIAlign, ROIAlignRotated
from detectron2.modeling import ROIPooler
from detectron2.modeling.poolers import assign_boxes_to_levels, convert_boxes_to_pooler_format
from detectron2.structures import Boxes, RotatedBoxes


def _square(cx, cy, size):
    return [cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2]


def test_assign_boxes_to_levels_canonical_224_level_4():
    sizes = [224, 112, 448, 56, 28, 1000, 223, 447.9]
    boxes = Boxes(torch.tensor([_square(500, 500, s) for s in sizes]))
    levels = assign_boxes_to_levels([boxes], 2, 5, 224, 4)
    # floor(4 + log2(size / 224)), clamped to [2, 5], relative to level 2.
    assert levels.tolist() == [2, 1, 3, 0, 0, 3, 1, 2]
    assert levels.dtype == torch.int64
    # Split over two images: same answer, concatenated in order.
    two = assign_boxes_to_levels([boxes[:3], boxes[3:]], 2, 5, 224, 4)
    assert two.tolist() == levels.tolist()
    # Another canonical size moves every box.
    assert assign_boxes_to_levels([boxes], 2, 5, 112, 4).tolist() == [3, 2, 3, 1, 0, 3, 2, 3]


def test_convert_boxes_to_pooler_format():
    b0 = Boxes(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    b1 = Boxes(torch.tensor([[5.0, 6.0, 7.0, 8.0], [0.0, 0.0, 1.0, 1.0]]))
    rois = convert_boxes_to_pooler_format([b0, Boxes(torch.zeros(0, 4)), b1])
    torch.testing.assert_close(
        rois,
        torch.tensor([[0.0, 1, 2, 3, 4], [2.0, 5, 6, 7, 8], [2.0, 0, 0, 1, 1]]),
    )


def _features(batch, channels, image_size, strides, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, channels, image_size // s, image_size // s, generator=g).to(device) for s in strides]


def _boxes_for_levels(device):
    # Sizes chosen to land on every level p2..p5 (and the clamps at both ends).
    b0 = torch.tensor([_square(100, 100, 40), _square(150, 200, 120), _square(250, 250, 300)])
    b1 = torch.tensor([_square(300, 300, 500), _square(60, 60, 10), _square(200, 100, 230), _square(50, 250, 80)])
    return [Boxes(b0.to(device)), Boxes(b1.to(device))]


@pytest.mark.parametrize("pooler_type,aligned", [("ROIAlignV2", True), ("ROIAlign", False)])
def test_pooler_equals_direct_roi_align_per_level(pooler_type, aligned, device):
    strides = (4, 8, 16, 32)
    feats = _features(2, 3, 512, strides, device)
    boxes = _boxes_for_levels(device)
    pooler = ROIPooler((7, 5), [1.0 / s for s in strides], sampling_ratio=2, pooler_type=pooler_type)
    assert (pooler.min_level, pooler.max_level) == (2, 5)
    out = pooler(feats, boxes)
    assert out.shape == (7, 3, 7, 5)

    rois = convert_boxes_to_pooler_format(boxes)
    levels = assign_boxes_to_levels(boxes, 2, 5, 224, 4)
    assert sorted(set(levels.tolist())) == [0, 1, 2, 3]
    for i in range(len(rois)):
        lvl = int(levels[i])
        ref = ROIAlign((7, 5), 1.0 / strides[lvl], 2, aligned=aligned)(feats[lvl], rois[i : i + 1])
        torch.testing.assert_close(out[i : i + 1], ref)


def test_pooler_roipool_and_single_level():
    feats = _features(2, 4, 256, (8,), "cpu")
    boxes = [Boxes(torch.tensor([[10.0, 10.0, 80.0, 60.0]])), Boxes(torch.tensor([[0.0, 0.0, 200.0, 250.0]]))]
    out = ROIPooler(3, [1.0 / 8], 0, "ROIPool")(feats, boxes)
    rois = convert_boxes_to_pooler_format(boxes)
    torch.testing.assert_close(out, torchvision.ops.roi_pool(feats[0], rois, 3, 1.0 / 8))


def test_pooler_rotated():
    feats = _features(1, 2, 128, (4,), "cpu")
    rboxes = torch.tensor([[40.0, 50.0, 30.0, 20.0, 30.0], [64.0, 64.0, 50.0, 50.0, -45.0]])
    out = ROIPooler(4, [0.25], 2, "ROIAlignRotated")(feats, [RotatedBoxes(rboxes)])
    rois = torch.cat([torch.zeros(2, 1), rboxes], dim=1)
    torch.testing.assert_close(out, ROIAlignRotated(4, 0.25, 2)(feats[0], rois))


def test_pooler_empty_and_gradient():
    feats = _features(2, 3, 64, (4, 8), "cpu")
    pooler = ROIPooler(2, [0.25, 0.125], 0, "ROIAlignV2")
    empty = [Boxes(torch.zeros(0, 4)), Boxes(torch.zeros(0, 4))]
    assert pooler(feats, empty).shape == (0, 3, 2, 2)
    feats = [f.requires_grad_() for f in feats]
    boxes = [Boxes(torch.tensor([[0.0, 0.0, 20.0, 20.0]])), Boxes(torch.tensor([[-30.0, -30.0, 100.0, 100.0]]))]  # level 3
    pooler(feats, boxes).sum().backward()
    assert feats[0].grad.abs().sum() > 0 and feats[1].grad.abs().sum() > 0


def test_pooler_bad_arguments():
    with pytest.raises(ValueError, match="Unknown pooler type"):
        ROIPooler(7, [0.25], 0, "ROIMaxAlign")
    with pytest.raises(ValueError, match="power of 2"):
        ROIPooler(7, [1.0 / 3], 0, "ROIAlignV2")
    with pytest.raises(ValueError, match="consecutive"):
        ROIPooler(7, [0.25, 1.0 / 16], 0, "ROIAlignV2")
    with pytest.raises(ValueError, match="output_size"):
        ROIPooler((7, 7, 7), [0.25], 0, "ROIAlignV2")
    pooler = ROIPooler(7, [0.25, 0.125], 0, "ROIAlignV2")
    feats = _features(1, 3, 64, (4, 8), "cpu")
    boxes = [Boxes(torch.tensor([[0.0, 0.0, 8.0, 8.0]]))]
    with pytest.raises(AssertionError, match="feature maps"):
        pooler(feats[:1], boxes)
    with pytest.raises(AssertionError, match="batch size"):
        pooler(feats, boxes * 2)
    with pytest.raises(TypeError, match="lists"):
        pooler(tuple(feats), boxes)
