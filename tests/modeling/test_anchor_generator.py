import math

import pytest
import torch

from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling import (
    ANCHOR_GENERATOR_REGISTRY,
    DefaultAnchorGenerator,
    RotatedAnchorGenerator,
    build_anchor_generator,
)
from detectron2.structures import Boxes, RotatedBoxes


def test_default_anchors_hand_computed():
    gen = DefaultAnchorGenerator(sizes=[[32]], aspect_ratios=[[0.5, 1.0, 2.0]], strides=[4], offset=0.5)
    (boxes,) = gen([torch.zeros(1, 8, 2, 3)])
    assert isinstance(boxes, Boxes) and boxes.tensor.shape == (2 * 3 * 3, 4)
    w_half = math.sqrt(1024 / 0.5) / 2  # ratio 0.5: wide box, h = w / 2
    cells = torch.tensor(
        [[-w_half, -w_half / 2, w_half, w_half / 2], [-16.0, -16.0, 16.0, 16.0], [-w_half / 2, -w_half, w_half / 2, w_half]]
    )
    expected = []
    for y in range(2):  # ordered by row, column, then anchor
        for x in range(3):
            cx, cy = 4 * x + 2.0, 4 * y + 2.0
            expected.append(cells + torch.tensor([cx, cy, cx, cy]))
    torch.testing.assert_close(boxes.tensor, torch.cat(expected))
    # The anchor of ratio 1 at row 1, column 2 is centred at (10, 6).
    torch.testing.assert_close(boxes.tensor[(1 * 3 + 2) * 3 + 1], torch.tensor([-6.0, -10.0, 26.0, 22.0]))
    assert gen.num_anchors == [3] and gen.num_cell_anchors == [3]


def test_default_anchors_offset_zero_and_areas():
    gen = DefaultAnchorGenerator(sizes=[32, 64], aspect_ratios=[0.25, 1, 4], strides=[8, 16], offset=0.0)
    a8, a16 = gen([torch.zeros(1, 1, 3, 2), torch.zeros(1, 1, 1, 1)])
    assert len(a8) == 3 * 2 * 6 and len(a16) == 6
    torch.testing.assert_close(a16.get_centers(), torch.zeros(6, 2))
    torch.testing.assert_close(a8.get_centers()[-1], torch.tensor([8.0, 16.0]))
    areas = a16.area()
    torch.testing.assert_close(areas, torch.tensor([32.0**2] * 3 + [64.0**2] * 3))
    t = a16.tensor
    ratios = (t[:, 3] - t[:, 1]) / (t[:, 2] - t[:, 0])
    torch.testing.assert_close(ratios, torch.tensor([0.25, 1, 4, 0.25, 1, 4]))


def test_from_config_per_level_sizes_and_buffers():
    cfg = get_cfg()
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[32], [64], [128], [256], [512]]
    shapes = [ShapeSpec(channels=256, stride=s) for s in (4, 8, 16, 32, 64)]
    gen = build_anchor_generator(cfg, shapes)
    assert isinstance(gen, DefaultAnchorGenerator)
    assert gen.strides == [4, 8, 16, 32, 64] and gen.offset == 0.0
    assert gen.num_anchors == [3] * 5
    # Buffers follow .to() but are not checkpointed, as upstream.
    assert [n for n, _ in gen.named_buffers()] == [f"cell_anchors.{i}" for i in range(5)]
    assert len(gen.state_dict()) == 0
    feats = [torch.zeros(1, 256, 64 // s, 64 // s) for s in (4, 8, 16, 32, 64)]
    anchors = gen(feats)
    assert [len(a) for a in anchors] == [16 * 16 * 3, 8 * 8 * 3, 4 * 4 * 3, 2 * 2 * 3, 3]
    torch.testing.assert_close(anchors[2].area()[:3], torch.full((3,), 128.0**2))
    assert "DefaultAnchorGenerator" in ANCHOR_GENERATOR_REGISTRY


def test_rotated_anchors():
    gen = RotatedAnchorGenerator(sizes=[[16]], aspect_ratios=[[1.0, 4.0]], strides=[10], angles=[[-45, 0, 45]])
    (boxes,) = gen([torch.zeros(1, 1, 1, 2)])
    assert isinstance(boxes, RotatedBoxes) and boxes.tensor.shape == (2 * 6, 5)
    assert gen.num_anchors == [6]
    t = boxes.tensor
    torch.testing.assert_close(t[:6, :2], torch.full((6, 2), 5.0))
    torch.testing.assert_close(t[6:, :2], torch.tensor([[15.0, 5.0]] * 6))
    torch.testing.assert_close(t[:6, 4], torch.tensor([-45.0, 0, 45, -45, 0, 45]))
    torch.testing.assert_close(t[0, 2:4], torch.tensor([16.0, 16.0]))
    torch.testing.assert_close(t[3, 2:4], torch.tensor([8.0, 32.0]))  # h / w = 4, area 256

    cfg = get_cfg()
    cfg.MODEL.ANCHOR_GENERATOR.NAME = "RotatedAnchorGenerator"
    gen = build_anchor_generator(cfg, [ShapeSpec(stride=16)])
    assert gen.num_anchors == [5 * 3 * 3]
    assert gen.generate_cell_anchors().shape == (5 * 3 * 7, 5)


def test_anchor_generator_bad_input():
    with pytest.raises(ValueError, match="offset"):
        DefaultAnchorGenerator(sizes=[32], aspect_ratios=[1.0], strides=[4], offset=1.0)
    with pytest.raises(ValueError, match="sizes"):
        DefaultAnchorGenerator(sizes=[[32], [64], [128]], aspect_ratios=[1.0], strides=[4, 8])
    with pytest.raises(TypeError, match="aspect_ratios"):
        DefaultAnchorGenerator(sizes=[32], aspect_ratios=1.0, strides=[4])
    gen = DefaultAnchorGenerator(sizes=[32], aspect_ratios=[1.0], strides=[4, 8])
    with pytest.raises(ValueError, match="feature maps"):
        gen([torch.zeros(1, 1, 2, 2)])


def test_anchors_on_device(device):
    gen = DefaultAnchorGenerator(sizes=[32], aspect_ratios=[1.0], strides=[4]).to(device)
    (boxes,) = gen([torch.zeros(1, 1, 3, 3, device=device)])
    assert boxes.tensor.device.type == device.type
    expected = DefaultAnchorGenerator(sizes=[32], aspect_ratios=[1.0], strides=[4])([torch.zeros(1, 1, 3, 3)])[0]
    torch.testing.assert_close(boxes.tensor.cpu(), expected.tensor)
