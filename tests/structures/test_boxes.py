import itertools
import math

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from detectron2.structures import Boxes, BoxMode, pairwise_ioa, pairwise_iou, pairwise_point_box_distance
from detectron2.structures.boxes import matched_pairwise_iou, pairwise_intersection

ABS_MODES = [BoxMode.XYXY_ABS, BoxMode.XYWH_ABS, BoxMode.XYWHA_ABS]


def _xyxy():
    return torch.tensor([[10.0, 20.0, 50.0, 80.0], [0.0, 0.0, 5.0, 5.0], [3.5, 1.25, 7.0, 9.0]])


def _in_mode(mode):
    # The same boxes written in each absolute mode (zero angle for XYWHA).
    b = _xyxy()
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    if mode == BoxMode.XYXY_ABS:
        return b
    if mode == BoxMode.XYWH_ABS:
        return torch.stack([b[:, 0], b[:, 1], w, h], dim=1)
    return torch.stack([b[:, 0] + w / 2, b[:, 1] + h / 2, w, h, torch.zeros(3)], dim=1)


@pytest.mark.parametrize("src,dst", list(itertools.permutations(ABS_MODES, 2)))
def test_convert_all_pairs_and_round_trip(src, dst):
    out = BoxMode.convert(_in_mode(src), src, dst)
    torch.testing.assert_close(out, _in_mode(dst))
    back = BoxMode.convert(out, dst, src)
    torch.testing.assert_close(back, _in_mode(src))


def test_convert_same_mode_returns_input():
    b = _xyxy()
    assert BoxMode.convert(b, BoxMode.XYXY_ABS, BoxMode.XYXY_ABS) is b


def test_convert_keeps_type_for_list_tuple_numpy():
    assert BoxMode.convert([1, 2, 3, 4], BoxMode.XYWH_ABS, BoxMode.XYXY_ABS) == [1, 2, 4, 6]
    out = BoxMode.convert((1.0, 2.0, 3.0, 4.0), BoxMode.XYXY_ABS, BoxMode.XYWH_ABS)
    assert isinstance(out, tuple) and out == (1.0, 2.0, 2.0, 2.0)
    arr = np.array([[1.0, 2.0, 3.0, 4.0]], dtype=np.float32)
    out = BoxMode.convert(arr, BoxMode.XYWH_ABS, BoxMode.XYXY_ABS)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    np.testing.assert_allclose(out, [[1, 2, 4, 6]])
    np.testing.assert_allclose(arr, [[1, 2, 3, 4]])  # input untouched


def test_convert_does_not_modify_tensor_input():
    b = _xyxy()
    BoxMode.convert(b, BoxMode.XYXY_ABS, BoxMode.XYWH_ABS)
    torch.testing.assert_close(b, _xyxy())


def test_convert_rotated_to_xyxy_encloses_box():
    # A 2x4 box rotated by 90 degrees covers 4 wide and 2 high.
    out = BoxMode.convert([10.0, 20.0, 2.0, 4.0, 90.0], BoxMode.XYWHA_ABS, BoxMode.XYXY_ABS)
    np.testing.assert_allclose(out, [8.0, 19.0, 12.0, 21.0], atol=1e-6)
    # At 45 degrees a square of side 2 spans 2*sqrt(2).
    out = BoxMode.convert(torch.tensor([[0.0, 0.0, 2.0, 2.0, 45.0]]), BoxMode.XYWHA_ABS, BoxMode.XYXY_ABS)
    r = math.sqrt(2)
    torch.testing.assert_close(out, torch.tensor([[-r, -r, r, r]]))
    assert out.dtype == torch.float32


def test_convert_passes_extra_column_through():
    b = torch.tensor([[1.0, 2.0, 3.0, 4.0, 0.9]])
    out = BoxMode.convert(b, BoxMode.XYWH_ABS, BoxMode.XYXY_ABS)
    torch.testing.assert_close(out, torch.tensor([[1.0, 2.0, 4.0, 6.0, 0.9]]))


@pytest.mark.parametrize("rel", [BoxMode.XYXY_REL, BoxMode.XYWH_REL])
def test_convert_relative_modes_raise(rel):
    with pytest.raises(ValueError, match="relative"):
        BoxMode.convert([0, 0, 1, 1], rel, BoxMode.XYXY_ABS)
    with pytest.raises(ValueError, match="relative"):
        BoxMode.convert([0, 0, 1, 1], BoxMode.XYXY_ABS, rel)


def test_convert_bad_input():
    with pytest.raises(ValueError, match="k == 4 or 5"):
        BoxMode.convert([1, 2, 3], BoxMode.XYXY_ABS, BoxMode.XYWH_ABS)
    with pytest.raises(ValueError, match=r"\(N, 5\)"):
        BoxMode.convert(torch.zeros(2, 4), BoxMode.XYWHA_ABS, BoxMode.XYXY_ABS)
    with pytest.raises(ValueError, match=r"\(N, 4\) or \(N, 5\)"):
        BoxMode.convert(torch.zeros(2, 3), BoxMode.XYXY_ABS, BoxMode.XYWH_ABS)
    with pytest.raises(TypeError):
        BoxMode.convert("box", BoxMode.XYXY_ABS, BoxMode.XYWH_ABS)


def test_boxes_construction_and_empty():
    b = Boxes([[0, 0, 1, 1]])
    assert b.tensor.dtype == torch.float32 and b.tensor.shape == (1, 4)
    assert Boxes(torch.zeros(0)).tensor.shape == (0, 4)
    assert Boxes([]).tensor.shape == (0, 4)
    assert len(Boxes(torch.zeros(0, 4))) == 0
    assert Boxes(torch.zeros(2, 4, dtype=torch.float64)).tensor.dtype == torch.float32
    for bad in (torch.zeros(3), torch.zeros(2, 5), torch.zeros(1, 2, 4)):
        with pytest.raises(ValueError, match=r"\(N, 4\)"):
            Boxes(bad)


def test_area_centers_nonempty():
    b = Boxes(torch.tensor([[0.0, 0.0, 4.0, 3.0], [1.0, 1.0, 1.0, 5.0], [2.0, 2.0, 3.0, 2.5]]))
    torch.testing.assert_close(b.area(), torch.tensor([12.0, 0.0, 0.5]))
    torch.testing.assert_close(b.get_centers(), torch.tensor([[2.0, 1.5], [1.0, 3.0], [2.5, 2.25]]))
    assert b.nonempty().tolist() == [True, False, True]
    assert b.nonempty(threshold=0.6).tolist() == [True, False, False]


def test_clip_and_inside_box():
    b = Boxes(torch.tensor([[-5.0, -2.0, 30.0, 8.0], [1.0, 1.0, 2.0, 2.0]]))
    assert b.inside_box((10, 20)).tolist() == [False, True]
    assert b.inside_box((10, 20), boundary_threshold=11).tolist() == [True, True]
    b.clip((10, 20))  # (height, width)
    torch.testing.assert_close(b.tensor, torch.tensor([[0.0, 0.0, 20.0, 8.0], [1.0, 1.0, 2.0, 2.0]]))
    with pytest.raises(ValueError, match="infinite or NaN"):
        Boxes(torch.tensor([[0.0, 0.0, float("inf"), 1.0]])).clip((5, 5))


def test_scale_clone_cat():
    b = Boxes(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    c = b.clone()
    c.scale(2.0, 0.5)
    torch.testing.assert_close(c.tensor, torch.tensor([[2.0, 1.0, 6.0, 2.0]]))
    torch.testing.assert_close(b.tensor, torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    cat = Boxes.cat([b, c, Boxes(torch.zeros(0, 4))])
    assert len(cat) == 2 and isinstance(cat, Boxes)
    assert Boxes.cat([]).tensor.shape == (0, 4)
    with pytest.raises(TypeError):
        Boxes.cat([b, torch.zeros(1, 4)])


def test_indexing_every_form():
    t = torch.arange(20, dtype=torch.float32).view(5, 4)
    b = Boxes(t)
    assert b[1].tensor.shape == (1, 4) and b[1].tensor.tolist() == [t[1].tolist()]
    assert b[-1].tensor.tolist() == [t[4].tolist()]
    torch.testing.assert_close(b[1:3].tensor, t[1:3])
    mask = torch.tensor([True, False, True, False, True])
    torch.testing.assert_close(b[mask].tensor, t[mask])
    idx = torch.tensor([4, 0])
    torch.testing.assert_close(b[idx].tensor, t[idx])
    assert len(b[torch.zeros(5, dtype=torch.bool)]) == 0
    rows = list(b)
    assert len(rows) == 5 and rows[2].tolist() == t[2].tolist()
    assert repr(b).startswith("Boxes(tensor(")


def test_pairwise_iou_hand_computed():
    b1 = Boxes(torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]]))
    b2 = Boxes(torch.tensor([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 2.0, 2.0], [5.0, 5.0, 6.0, 6.0]]))
    expected = torch.tensor([[1 / 7, 1.0, 0.0], [0.0, 0.25, 0.0]])
    torch.testing.assert_close(pairwise_iou(b1, b2), expected)
    torch.testing.assert_close(pairwise_intersection(b1, b2), torch.tensor([[1.0, 4.0, 0.0], [0.0, 1.0, 0.0]]))
    torch.testing.assert_close(pairwise_ioa(b1, b2), torch.tensor([[0.25, 1.0, 0.0], [0.0, 0.25, 0.0]]))
    torch.testing.assert_close(matched_pairwise_iou(b1, b2[:2]), torch.tensor([1 / 7, 0.25]))
    with pytest.raises(ValueError, match="same number"):
        matched_pairwise_iou(b1, b2)


def test_pairwise_iou_empty_and_degenerate():
    empty = Boxes(torch.zeros(0, 4))
    b = Boxes(torch.tensor([[0.0, 0.0, 1.0, 1.0], [2.0, 2.0, 2.0, 2.0]]))
    assert pairwise_iou(empty, b).shape == (0, 2)
    assert pairwise_iou(b, empty).shape == (2, 0)
    iou = pairwise_iou(b, b)
    assert not torch.isnan(iou).any()  # a zero-area box gives 0, not NaN
    assert iou[1, 1] == 0


def test_pairwise_iou_matches_torchvision():
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(30, 2, generator=g) * 100
    wh = torch.rand(30, 2, generator=g) * 50
    t = torch.cat([xy, xy + wh], dim=1)
    torch.testing.assert_close(pairwise_iou(Boxes(t[:10]), Boxes(t[10:])), box_iou(t[:10], t[10:]))


def test_non_contiguous_input():
    base = torch.rand(6, 8) * 10
    base[:, 4:] += base[:, :4]
    t = base[:, ::2]  # columns 0, 2, 4, 6: x0, y0, x1, y1
    assert not t.is_contiguous()
    b = Boxes(t)
    torch.testing.assert_close(pairwise_iou(b, b), pairwise_iou(Boxes(t.contiguous()), Boxes(t.contiguous())))


def test_point_box_distance():
    points = torch.tensor([[1.0, 2.0], [10.0, 10.0]])
    boxes = Boxes(torch.tensor([[0.0, 0.0, 4.0, 4.0]]))
    d = pairwise_point_box_distance(points, boxes)
    assert d.shape == (2, 1, 4)
    torch.testing.assert_close(d[:, 0], torch.tensor([[1.0, 2.0, 3.0, 2.0], [10.0, 10.0, -6.0, -6.0]]))
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        pairwise_point_box_distance(torch.zeros(3), boxes)


def test_device_moves(device):
    b = Boxes(_xyxy()).to(device)
    assert b.device.type == device.type and b.tensor.device.type == device.type
    iou = pairwise_iou(b, b)
    assert iou.device.type == device.type
    torch.testing.assert_close(iou.cpu(), pairwise_iou(Boxes(_xyxy()), Boxes(_xyxy())))
    b.clip((30, 30))
    assert b.nonempty().device.type == device.type
    converted = BoxMode.convert(_in_mode(BoxMode.XYWHA_ABS).to(device), BoxMode.XYWHA_ABS, BoxMode.XYXY_ABS)
    assert converted.device.type == device.type
    torch.testing.assert_close(converted.cpu(), _xyxy())


def _script_area(x: torch.Tensor):
    boxes = Boxes(x)
    moved = boxes.to(torch.device("cpu"))
    return boxes.area(), moved.tensor


def _script_ops(x: torch.Tensor):
    b1 = Boxes(x)
    b2 = b1.clone()
    b2.scale(2.0, 2.0)
    b2.clip((10, 10))
    b3 = b1.cat([b1, b2])
    keep = b3.nonempty()
    return pairwise_iou(b3[keep], b1), b3.get_centers(), b1.inside_box((10, 10)), len(b3)


def test_torchscript():
    x = torch.tensor([[0.0, 0.0, 4.0, 4.0], [1.0, 1.0, 6.0, 3.0]])
    scripted = torch.jit.script(_script_area)
    for a, b in zip(scripted(x), _script_area(x)):
        torch.testing.assert_close(a, b)
    scripted = torch.jit.script(_script_ops)
    out, ref = scripted(x), _script_ops(x)
    for a, b in zip(out[:3], ref[:3]):
        torch.testing.assert_close(a, b)
    assert out[3] == ref[3] == 4


def test_pairwise_iou_gradient_matches_torchvision():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 4.0, 5.0]], requires_grad=True)
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [0.5, 0.0, 2.0, 6.0]])
    pairwise_iou(Boxes(a), Boxes(b)).sum().backward()
    ours = a.grad.clone()
    a.grad = None
    box_iou(a, b).sum().backward()
    torch.testing.assert_close(ours, a.grad)
