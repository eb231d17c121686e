"""The rotated-box convention, (x_ctr, y_ctr, w, h, angle in degrees) with the angle
counter-clockwise on screen (y down), checked against exact geometry in every op:
box_iou_rotated and nms_rotated against shapely polygons in float64 at angles in
[-720, 720] and on the hard cases, and roi_align_rotated against the same polygons
(it must sample inside the box that box_iou_rotated intersects)."""
import math
import os
import sys

import numpy as np
import pytest
import torch

from detectron2.layers import nms_rotated, roi_align_rotated
from detectron2.layers.rotated_boxes import pairwise_iou_rotated

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rotated_reference as ref  # noqa: E402

import shapely.geometry as shapely_geometry  # noqa: E402  (a test dependency: bootstrap installs it)


def polygon(box):
    return shapely_geometry.Polygon(ref.corners(box))


def exact_iou(a, b) -> float:
    """Exact IoU of two boxes from shapely polygons (float64); 0 for empty boxes."""
    if min(a[2], a[3], b[2], b[3]) <= 0:
        return 0.0
    pa, pb = polygon(a), polygon(b)
    inter = pa.intersection(pb).area
    return inter / (pa.area + pb.area - inter)


def exact_matrix(b1, b2) -> np.ndarray:
    return np.array([[exact_iou(p, q) for q in b2] for p in b1], dtype=np.float64).reshape(len(b1), len(b2))


def _t(array, dtype=torch.float64, device="cpu") -> torch.Tensor:
    return torch.as_tensor(np.asarray(array, dtype=np.float64), dtype=dtype, device=device)


def test_direction_known_value(device):
    # A 10x2 bar turned by +45 degrees runs from the lower left to the upper right on
    # screen (y down): its right end is near (3.5, -3.5). A 2x2 square there overlaps
    # it; the mirrored square at (3, +3) does not.
    bar = [0.0, 0.0, 10.0, 2.0, 45.0]
    up, down = [3.0, -3.0, 2.0, 2.0, 0.0], [3.0, 3.0, 2.0, 2.0, 0.0]
    got = pairwise_iou_rotated(_t([bar], device=device), _t([up, down], device=device)).cpu().numpy()[0]
    assert got[0] == pytest.approx(exact_iou(bar, up), abs=1e-12) and got[0] > 0.05
    assert got[1] == 0.0
    # The reference itself: with angle 90 the right edge moves to the top.
    assert np.allclose(ref.corners([0, 0, 2, 0.5, 90])[1:3, 1], [-1.0, -1.0])


@pytest.mark.parametrize("dtype,atol", [(torch.float64, 1e-9), (torch.float32, 2e-5)])
def test_random_angles_match_shapely(device, dtype, atol):
    b1 = ref.random_boxes(60, seed=21, spread=40.0, angle_range=720.0)
    b2 = ref.random_boxes(50, seed=22, spread=40.0, angle_range=720.0)
    r1, r2 = _t(b1, dtype, device), _t(b2, dtype, device)
    got = pairwise_iou_rotated(r1, r2).cpu().double().numpy()
    # Exact IoU of the boxes as the op sees them (rounded to dtype).
    expected = exact_matrix(r1.cpu().double().numpy(), r2.cpu().double().numpy())
    np.testing.assert_allclose(got, expected, atol=atol, rtol=0)
    assert (expected > 0).mean() > 0.3  # real overlaps, in all orientations


def _hard_pairs():
    pairs = []
    for a in (0.0, 17.0, 45.0, 90.0, -123.4, 600.0):
        t = math.radians(a)
        ux, uy = math.cos(t), -math.sin(t)  # the width direction on screen
        vx, vy = math.sin(t), math.cos(t)  # the height direction
        # Touching along a full edge, at a corner, and overlapping by a sliver.
        pairs.append(([5.0, 5.0, 4.0, 2.0, a], [5.0 + 4.0 * ux, 5.0 + 4.0 * uy, 4.0, 2.0, a]))
        pairs.append(([5.0, 5.0, 4.0, 2.0, a], [5.0 + 4.0 * ux + 2.0 * vx, 5.0 + 4.0 * uy + 2.0 * vy, 4.0, 2.0, a]))
        pairs.append(([5.0, 5.0, 4.0, 2.0, a], [5.0 + 3.999 * ux, 5.0 + 3.999 * uy, 4.0, 2.0, a + 1e-7]))
        # One inside the other, sharing an edge, and strictly inside at another angle.
        pairs.append(([0.0, 0.0, 10.0, 6.0, a], [3.0 * ux, 3.0 * uy, 4.0, 6.0, a]))
        pairs.append(([0.0, 0.0, 10.0, 6.0, a], [1.0, -0.5, 2.0, 1.0, a + 33.0]))
        # Near-parallel edges, slightly offset.
        for da in (1e-9, 1e-6, 1e-3, 0.1):
            pairs.append(([0.0, 0.0, 8.0, 3.0, a], [0.5 * vx, 0.5 * vy, 8.0, 3.0, a + da]))
            pairs.append(([0.0, 0.0, 8.0, 3.0, a], [0.0, 0.0, 8.0, 3.0, a + 90.0 + da]))
        # Identical, and identical up to whole and half turns.
        pairs.append(([1.0, 2.0, 3.0, 4.0, a], [1.0, 2.0, 3.0, 4.0, a]))
        pairs.append(([1.0, 2.0, 3.0, 4.0, a], [1.0, 2.0, 3.0, 4.0, a + 180.0]))
        pairs.append(([1.0, 2.0, 3.0, 4.0, a], [1.0, 2.0, 3.0, 4.0, a - 720.0]))
        # Tiny and huge boxes, tiny inside huge, far from the origin.
        pairs.append(([1e4, -1e4, 1e-3, 2e-3, a], [1e4 + 5e-4, -1e4, 1e-3, 2e-3, a + 30.0]))
        pairs.append(([1e4, 1e4, 1e5, 3e4, a], [1.2e4, 1e4, 5e4, 5e4, a + 10.0]))
        pairs.append(([0.0, 0.0, 1e5, 1e5, a], [10.0, 20.0, 1e-2, 1e-2, a + 5.0]))
    return pairs


@pytest.mark.parametrize("dtype,atol", [(torch.float64, 1e-7), (torch.float32, 2e-3)])
def test_hard_cases_match_shapely(device, dtype, atol):
    pairs = _hard_pairs()
    b1 = _t([p for p, _ in pairs], dtype, device)
    b2 = _t([q for _, q in pairs], dtype, device)
    got = ops_iou_pairs(b1, b2)
    expected = np.array([exact_iou(p, q) for p, q in zip(b1.cpu().double().numpy(), b2.cpu().double().numpy())])
    assert np.isfinite(got).all() and (got >= 0).all() and (got <= 1).all()
    np.testing.assert_allclose(got, expected, atol=atol, rtol=0)
    # Symmetric too.
    np.testing.assert_allclose(ops_iou_pairs(b2, b1), got, atol=atol, rtol=0)


def ops_iou_pairs(b1: torch.Tensor, b2: torch.Tensor) -> np.ndarray:
    """IoU of row i of b1 with row i of b2."""
    return pairwise_iou_rotated(b1, b2).diagonal().cpu().double().numpy()


def greedy_nms(ious: np.ndarray, scores, threshold) -> list:
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    suppressed = np.zeros(len(scores), dtype=bool)
    keep = []
    for i in order:
        if not suppressed[i]:
            keep.append(i)
            suppressed |= ious[i] > threshold
    return keep


def exact_self_matrix(boxes) -> np.ndarray:
    n = len(boxes)
    out = np.eye(n)
    for i in range(n):
        for j in range(i + 1, n):
            out[i, j] = out[j, i] = exact_iou(boxes[i], boxes[j])
    return out


@pytest.mark.parametrize("threshold", [0.05, 0.3, 0.6])
def test_nms_rotated_matches_exact_greedy_nms(device, threshold):
    boxes = ref.random_boxes(90, seed=23, spread=20.0, angle_range=720.0)
    scores = np.random.RandomState(24).permutation(90) / 90.0
    exact = exact_self_matrix(boxes)
    assert np.abs(exact - threshold).min() > 1e-6  # no decision within rounding of the threshold
    keep = nms_rotated(_t(boxes, device=device), _t(scores, device=device), threshold)
    expected = greedy_nms(exact, scores, threshold)
    assert keep.tolist() == expected
    assert 5 < len(expected) < 85


def _indicator(box, height: int, width: int) -> torch.Tensor:
    """A (1, 1, H, W) map that is 1 at the pixels whose centres lie inside `box`."""
    from shapely import contains_xy

    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    inside = contains_xy(polygon(box), xs.ravel(), ys.ravel()).reshape(height, width)
    return torch.from_numpy(inside.astype(np.float64))[None, None]


@pytest.mark.parametrize("angle", [0.0, 30.0, -75.0, 135.0, 400.0])
def test_roi_align_rotated_samples_inside_the_iou_polygon(device, angle):
    # The box pooled over its own indicator: bins away from the border see only 1s.
    box = [64.0, 60.0, 90.0, 24.0, angle]
    feature = _indicator(box, 128, 128).to(device)
    roi = _t([[0.0] + box], device=device)
    pooled = roi_align_rotated(feature, roi, (5, 5), 1.0, 2)[0, 0].cpu()
    torch.testing.assert_close(pooled[1:-1, 1:-1], torch.ones(3, 3, dtype=torch.float64), atol=1e-12, rtol=0)
    if angle % 90 != 0:
        # The mirrored angle samples outside: this check can fail.
        mirrored = roi_align_rotated(feature, _t([[0.0] + box[:4] + [-angle]], device=device), (5, 5), 1.0, 2)
        assert mirrored[0, 0].mean() < pooled.mean() - 0.2


def test_roi_align_rotated_overlap_agrees_with_box_iou_rotated(device):
    # Pooling B's indicator over roi A with a dense grid gives area(A & B) / area(A);
    # box_iou_rotated gives the same intersection through inter = iou (|A| + |B|) / (1 + iou).
    rng = np.random.RandomState(25)
    pairs = []
    for _ in range(12):
        # Elongated boxes: the overlap then depends strongly on the sense of rotation.
        a = [100.0 + rng.uniform(-10, 10), 100.0 + rng.uniform(-10, 10), rng.uniform(70, 110), rng.uniform(20, 35),
             rng.uniform(-720, 720)]
        b = [a[0] + rng.uniform(-20, 20), a[1] + rng.uniform(-20, 20), rng.uniform(60, 100), rng.uniform(20, 35),
             rng.uniform(-720, 720)]
        pairs.append((a, b))
    from_pooling, from_iou, mirrored = [], [], []
    for a, b in pairs:
        feature = _indicator(b, 200, 200).to(device)
        pooled = roi_align_rotated(feature, _t([[0.0] + a], device=device), (4, 4), 1.0, 16).mean().item()
        flipped = roi_align_rotated(feature, _t([[0.0] + a[:4] + [-a[4]]], device=device), (4, 4), 1.0, 16)
        iou = pairwise_iou_rotated(_t([a], device=device), _t([b], device=device)).item()
        inter = iou * (a[2] * a[3] + b[2] * b[3]) / (1 + iou)
        from_pooling.append(pooled)
        from_iou.append(inter / (a[2] * a[3]))
        mirrored.append(flipped.mean().item())
    # Rasterising at 1 px blurs the edges: a few percent of the area at these sizes.
    np.testing.assert_allclose(from_pooling, from_iou, atol=0.04, rtol=0)
    assert np.abs(np.array(mirrored) - np.array(from_iou)).max() > 0.15  # the check has power
