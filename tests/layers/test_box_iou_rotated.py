import os
import sys

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from detectron2.layers._ops import ops
from detectron2.layers.rotated_boxes import pairwise_iou_rotated

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rotated_reference as ref  # noqa: E402

ATOL = {torch.float32: 2e-5, torch.float64: 1e-8}


def _t(array, dtype=torch.float32, device="cpu") -> torch.Tensor:
    return torch.as_tensor(np.asarray(array, dtype=np.float64), dtype=dtype, device=device)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_random_boxes_match_numpy_clipping(device, dtype):
    b1, b2 = ref.random_boxes(40, seed=0), ref.random_boxes(35, seed=1)
    got = pairwise_iou_rotated(_t(b1, dtype, device), _t(b2, dtype, device))
    assert got.dtype == dtype and got.shape == (40, 35)
    # Compare against the reference evaluated on the exactly representable inputs.
    expected = ref.pairwise_iou(_t(b1, dtype).double().numpy(), _t(b2, dtype).double().numpy())
    np.testing.assert_allclose(got.cpu().double().numpy(), expected, atol=ATOL[dtype], rtol=0)
    assert (expected > 0).mean() > 0.2  # the case exercises real overlaps


def test_matches_shapely():
    import shapely.geometry as shapely_geometry
    b1, b2 = ref.random_boxes(15, seed=2), ref.random_boxes(15, seed=3)
    got = pairwise_iou_rotated(_t(b1, torch.float64), _t(b2, torch.float64)).numpy()
    for i, p in enumerate(b1):
        for j, q in enumerate(b2):
            pp, qq = shapely_geometry.Polygon(ref.corners(p)), shapely_geometry.Polygon(ref.corners(q))
            inter = pp.intersection(qq).area
            assert got[i, j] == pytest.approx(inter / (pp.area + qq.area - inter), abs=1e-9)


def test_known_values(device):
    boxes = _t([[0, 0, 2, 2, 0], [1, 0, 2, 2, 0], [0, 0, 2, 2, 45], [0, 0, 2, 2, 90], [0, 0, 4, 1, 90]], device=device)
    got = pairwise_iou_rotated(boxes, boxes).cpu()
    octagon = 8 * (np.sqrt(2) - 1)
    assert got[0, 1] == pytest.approx(2 / 6, abs=1e-6)  # half overlap: 2 / (4 + 4 - 2)
    assert got[0, 2] == pytest.approx(octagon / (8 - octagon), abs=1e-6)
    assert got[0, 3] == pytest.approx(1.0, abs=1e-6)  # a square rotated by 90 degrees
    assert got[0, 4] == pytest.approx(2 / 6, abs=1e-6)  # (1 x 4 upright) vs 2 x 2: 2 / (4 + 4 - 2)


def test_axis_aligned_matches_torchvision(device):
    b1, b2 = ref.random_boxes(50, seed=4), ref.random_boxes(60, seed=5)
    b1[:, 4] = 0
    b2[:, 4] = 0
    r1, r2 = _t(b1, device=device), _t(b2, device=device)

    def xyxy(b):
        return torch.cat([b[:, :2] - b[:, 2:4] / 2, b[:, :2] + b[:, 2:4] / 2], dim=1)

    torch.testing.assert_close(pairwise_iou_rotated(r1, r2), box_iou(xyxy(r1), xyxy(r2)), atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_identical_boxes_give_one(device, dtype):
    boxes = ref.random_boxes(64, seed=6, spread=1e4)
    boxes[:8, 4] = [0, 90, -90, 180, -180, 270, 720, -1e3]  # exact multiples and far-out angles
    got = pairwise_iou_rotated(_t(boxes, dtype, device), _t(boxes, dtype, device)).diagonal()
    torch.testing.assert_close(got.cpu(), torch.ones(64, dtype=dtype), atol=1e-5, rtol=0)
    # The same boxes with angles one turn apart go through the general polygon path.
    turned = boxes + np.array([0, 0, 0, 0, 360.0])
    got = pairwise_iou_rotated(_t(boxes, dtype, device), _t(turned, dtype, device)).diagonal()
    torch.testing.assert_close(got.cpu(), torch.ones(64, dtype=dtype), atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_equal_angles_match_numpy_clipping(device, dtype):
    # Equal angles take the aligned-overlap shortcut; it must agree with the polygon answer.
    b1, b2 = ref.random_boxes(30, seed=17), ref.random_boxes(30, seed=18)
    b1[:, 4] = b2[:, 4] = 37.5
    got = pairwise_iou_rotated(_t(b1, dtype, device), _t(b2, dtype, device))
    expected = ref.pairwise_iou(_t(b1, dtype).double().numpy(), _t(b2, dtype).double().numpy())
    np.testing.assert_allclose(got.cpu().double().numpy(), expected, atol=ATOL[dtype], rtol=0)
    assert (expected > 0).mean() > 0.2


def test_angles_beyond_180_are_periodic(device):
    b1, b2 = ref.random_boxes(20, seed=7), ref.random_boxes(20, seed=8)
    base = pairwise_iou_rotated(_t(b1, torch.float64, device), _t(b2, torch.float64, device))
    for turn in (360.0, -720.0, 180.0):  # a rectangle is symmetric under a half turn
        shifted = b2.copy()
        shifted[:, 4] += turn
        got = pairwise_iou_rotated(_t(b1, torch.float64, device), _t(shifted, torch.float64, device))
        torch.testing.assert_close(got, base, atol=1e-9, rtol=0)


def test_degenerate_boxes_give_zero_not_nan(device):
    boxes = _t(
        [[5, 5, 0, 4, 30], [5, 5, 4, 0, 0], [5, 5, 0, 0, 0], [5, 5, -2, 4, 0], [5, 5, 4, 4, 0], [5, 5, 1e-12, 4, 10]],
        torch.float64,
        device,
    )
    got = pairwise_iou_rotated(boxes, boxes).cpu()
    assert torch.isfinite(got).all()
    assert got[:4].abs().max() == 0 and got[:, :4].abs().max() == 0
    assert got[4, 4] == pytest.approx(1.0)
    assert 0 <= got[5, 4] < 1e-11


def test_far_apart_and_contained(device):
    boxes = _t([[0, 0, 10, 10, 0], [1e3, -1e3, 10, 10, 33], [1, 1, 2, 3, 37]], torch.float64, device)
    got = pairwise_iou_rotated(boxes, boxes).cpu()
    assert got[0, 1] == 0 and got[1, 2] == 0
    assert got[0, 2] == pytest.approx(6 / 100, abs=1e-12)  # fully inside


def test_large_coordinates_stay_accurate(device):
    b1, b2 = ref.random_boxes(20, seed=9), ref.random_boxes(20, seed=10)
    offset = np.array([3e4, -2e4, 0, 0, 0])
    r1, r2 = _t(b1 + offset, device=device), _t(b2 + offset, device=device)  # float32
    expected = ref.pairwise_iou(r1.cpu().double().numpy(), r2.cpu().double().numpy())
    np.testing.assert_allclose(pairwise_iou_rotated(r1, r2).cpu().numpy(), expected, atol=2e-3, rtol=0)


def test_empty_inputs(device):
    for n, m in ((0, 3), (4, 0), (0, 0)):
        got = pairwise_iou_rotated(torch.zeros(n, 5, device=device), torch.zeros(m, 5, device=device))
        assert got.shape == (n, m) and got.dtype == torch.float32 and got.device.type == device.type


def test_non_contiguous_inputs(device):
    b1, b2 = _t(ref.random_boxes(12, seed=11), device=device), _t(ref.random_boxes(9, seed=12), device=device)
    wide1 = torch.zeros(12, 10, device=device)
    wide1[:, ::2] = b1
    cols2 = b2.t().contiguous().t()
    assert not wide1[:, ::2].is_contiguous() and not cols2.is_contiguous()
    torch.testing.assert_close(ops().box_iou_rotated(wide1[:, ::2], cols2), ops().box_iou_rotated(b1, b2))


def test_bad_inputs(device):
    good = torch.zeros(3, 5, device=device)
    cases = [
        ((torch.zeros(3, 4, device=device), good), ValueError, "boxes1"),
        ((good, torch.zeros(3, 5, 1, device=device)), ValueError, "boxes2"),
        ((torch.zeros(5, device=device), good), ValueError, "boxes1"),
        ((good.long(), good.long()), TypeError, "boxes1"),
        ((good, good.double()), TypeError, "boxes2"),
    ]
    if device.type == "cpu":
        cases.append(((good.half(), good.half()), TypeError, "boxes1"))
    for args, exc, name in cases:
        with pytest.raises(exc, match=name):
            ops().box_iou_rotated(*args)


@pytest.mark.cuda
def test_mismatched_devices():
    with pytest.raises(ValueError, match="boxes2"):
        ops().box_iou_rotated(torch.zeros(3, 5, device="cuda"), torch.zeros(3, 5))
    with pytest.raises(ValueError, match="boxes2"):
        ops().box_iou_rotated(torch.zeros(3, 5), torch.zeros(3, 5, device="cuda"))


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_matches_cpu_on_many_boxes(dtype):
    b1 = _t(ref.random_boxes(1000, seed=13, spread=300), dtype)
    b2 = _t(ref.random_boxes(700, seed=14, spread=300), dtype)
    torch.testing.assert_close(
        pairwise_iou_rotated(b1.cuda(), b2.cuda()).cpu(), pairwise_iou_rotated(b1, b2), atol=ATOL[dtype], rtol=0
    )


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_half_types(dtype):
    # Small coordinates so that the half-precision inputs keep their meaning.
    b1 = _t(ref.random_boxes(50, seed=15, spread=20), dtype, "cuda")
    b2 = _t(ref.random_boxes(40, seed=16, spread=20), dtype, "cuda")
    got = pairwise_iou_rotated(b1, b2)
    assert got.dtype == dtype
    expected = pairwise_iou_rotated(b1.float(), b2.float())
    torch.testing.assert_close(got.float(), expected, atol=1e-2, rtol=0)
