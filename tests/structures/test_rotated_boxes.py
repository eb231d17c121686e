import math

import pytest
import torch

from detectron2.structures import Boxes, BoxMode, RotatedBoxes, pairwise_iou, pairwise_iou_rotated


def _boxes():
    return torch.tensor([[5.0, 5.0, 4.0, 2.0, 0.0], [10.0, 10.0, 6.0, 3.0, 30.0], [1.0, 1.0, 0.0, 2.0, -90.0]])


def test_construction_and_empty():
    b = RotatedBoxes(_boxes().double())
    assert b.tensor.dtype == torch.float32 and len(b) == 3
    assert RotatedBoxes(torch.zeros(0)).tensor.shape == (0, 5)
    assert RotatedBoxes([]).tensor.shape == (0, 5)
    for bad in (torch.zeros(2, 4), torch.zeros(5)):
        with pytest.raises(ValueError, match=r"\(N, 5\)"):
            RotatedBoxes(bad)


def test_area_nonempty_centers():
    b = RotatedBoxes(_boxes())
    torch.testing.assert_close(b.area(), torch.tensor([8.0, 18.0, 0.0]))
    assert b.nonempty().tolist() == [True, True, False]
    assert b.nonempty(threshold=2.5).tolist() == [False, True, False]
    torch.testing.assert_close(b.get_centers(), _boxes()[:, :2])


def test_normalize_angles():
    b = RotatedBoxes(torch.tensor([[0, 0, 1, 1, a] for a in (180.0, -180.0, 190.0, -190.0, 540.0, 45.0, 359.0)]))
    b.normalize_angles()
    torch.testing.assert_close(b.tensor[:, 4], torch.tensor([-180.0, -180.0, -170.0, 170.0, -180.0, 45.0, -1.0]))


def test_clip_only_near_horizontal():
    b = RotatedBoxes(torch.tensor([[1.0, 5.0, 6.0, 2.0, 0.5], [1.0, 5.0, 6.0, 2.0, 30.0], [5.0, 5.0, 2.0, 2.0, 360.0]]))
    b.clip((10, 8))
    # Box 0 spans x in [-2, 4] -> [0, 4]: centre 2, width 4; y is inside.
    torch.testing.assert_close(b.tensor[0], torch.tensor([2.0, 5.0, 4.0, 2.0, 0.5]))
    torch.testing.assert_close(b.tensor[1], torch.tensor([1.0, 5.0, 6.0, 2.0, 30.0]))
    torch.testing.assert_close(b.tensor[2], torch.tensor([5.0, 5.0, 2.0, 2.0, 0.0]))  # angle normalised
    b2 = RotatedBoxes(torch.tensor([[1.0, 5.0, 6.0, 2.0, 30.0]]))
    b2.clip((10, 8), clip_angle_threshold=45.0)
    torch.testing.assert_close(b2.tensor[0], torch.tensor([2.0, 5.0, 4.0, 2.0, 30.0]))


def test_inside_box():
    b = RotatedBoxes(torch.tensor([[5.0, 5.0, 4.0, 2.0, 0.0], [5.0, 5.0, 4.0, 2.0, 90.0], [5.0, 5.0, 12.0, 2.0, 0.0]]))
    # Image 8 wide and 6.5 high: rotated by 90 the box spans y in [3, 7].
    assert b.inside_box((6.5, 8)).tolist() == [True, False, False]
    assert b.inside_box((6.5, 8), boundary_threshold=1).tolist() == [True, True, False]


def test_scale_uniform_and_axis_aligned():
    b = RotatedBoxes(_boxes())
    b.scale(2.0, 2.0)
    expected = _boxes()
    expected[:, :4] *= 2
    torch.testing.assert_close(b.tensor, expected)

    b = RotatedBoxes(torch.tensor([[4.0, 6.0, 2.0, 1.0, 0.0], [4.0, 6.0, 2.0, 1.0, 90.0]]))
    b.scale(3.0, 0.5)
    # At 0 degrees width follows x; at 90 degrees width lies along y.
    torch.testing.assert_close(b.tensor, torch.tensor([[12.0, 3.0, 6.0, 0.5, 0.0], [12.0, 3.0, 1.0, 3.0, 90.0]]))


def test_scale_rotated_non_uniform():
    b = RotatedBoxes(torch.tensor([[1.0, 1.0, 2.0, 4.0, 45.0]]))
    b.scale(2.0, 1.0)
    # Edge vectors (w cos, -w sin) and (h sin, h cos) scaled by (2, 1): both lengths grow by
    # sqrt(2.5); the angle follows the scaled height edge: atan2(2 sin, cos) = atan(2).
    r = math.sqrt(2.5)
    expected = torch.tensor([[2.0, 1.0, 2.0 * r, 4.0 * r, math.degrees(math.atan(2.0))]])
    torch.testing.assert_close(b.tensor, expected)


def test_indexing_clone_cat():
    t = _boxes()
    b = RotatedBoxes(t)
    assert isinstance(b[0], RotatedBoxes) and b[0].tensor.shape == (1, 5)
    torch.testing.assert_close(b[1:].tensor, t[1:])
    torch.testing.assert_close(b[torch.tensor([True, False, True])].tensor, t[[0, 2]])
    torch.testing.assert_close(b[torch.tensor([2, 1])].tensor, t[[2, 1]])
    c = b.clone()
    c.tensor[0, 0] = 100
    assert b.tensor[0, 0] == 5
    cat = RotatedBoxes.cat([b, c])
    assert isinstance(cat, RotatedBoxes) and len(cat) == 6
    assert len(RotatedBoxes.cat([])) == 0
    with pytest.raises(TypeError):
        RotatedBoxes.cat([b, Boxes(torch.zeros(1, 4))])
    assert len(list(b)) == 3
    assert repr(b).startswith("RotatedBoxes(")


def test_device_moves(device):
    b = RotatedBoxes(_boxes()).to(device)
    assert b.device.type == device.type
    b.scale(2.0, 3.0)
    b.clip((100, 100))
    ref = RotatedBoxes(_boxes())
    ref.scale(2.0, 3.0)
    ref.clip((100, 100))
    torch.testing.assert_close(b.tensor.cpu(), ref.tensor)


def test_pairwise_iou_rotated_matches_axis_aligned(device):
    xyxy = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 1.0, 4.0]])
    rot = BoxMode.convert(xyxy, BoxMode.XYXY_ABS, BoxMode.XYWHA_ABS)
    iou = pairwise_iou_rotated(RotatedBoxes(rot).to(device), RotatedBoxes(rot).to(device))
    torch.testing.assert_close(iou.cpu(), pairwise_iou(Boxes(xyxy), Boxes(xyxy)), atol=1e-5, rtol=1e-5)


def test_pairwise_iou_rotated_rotation_invariance():
    a = RotatedBoxes(torch.tensor([[0.0, 0.0, 4.0, 2.0, 0.0]]))
    b = RotatedBoxes(torch.tensor([[0.0, 0.0, 4.0, 2.0, 90.0]]))
    # The cross of two 4x2 rectangles: intersection 2x2=4, union 8+8-4=12.
    torch.testing.assert_close(pairwise_iou_rotated(a, b), torch.tensor([[1.0 / 3.0]]), atol=1e-5, rtol=1e-5)
    assert pairwise_iou_rotated(a, RotatedBoxes(torch.zeros(0, 5))).shape == (1, 0)


def _script_rotated(x: torch.Tensor):
    b = RotatedBoxes(x)
    b.normalize_angles()
    b.clip((20, 20))
    b.scale(2.0, 0.5)
    c = b[b.nonempty()]
    return c.tensor, c.area(), b.inside_box((40, 40)), len(c)


def test_torchscript():
    scripted = torch.jit.script(_script_rotated)
    out, ref = scripted(_boxes()), _script_rotated(_boxes())
    for a, b in zip(out[:3], ref[:3]):
        torch.testing.assert_close(a, b)
    assert out[3] == ref[3] == 2
