"""RotatedBoxes methods, the rotated transforms, BoxMode, the rotated box coder and the
rotated evaluator's IoU all follow the one convention of the rotated ops
((x_ctr, y_ctr, w, h, angle) with the angle counter-clockwise on screen, y down),
checked on exact polygons at random angles in [-720, 720]."""
import math
import os
import sys

import numpy as np
import pytest
import torch

from detectron2.data import transforms as T
from detectron2.layers.rotated_boxes import pairwise_iou_rotated as box_iou_rotated
from detectron2.modeling.box_regression import Box2BoxTransformRotated
from detectron2.structures import BoxMode, RotatedBoxes, pairwise_iou_rotated

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "layers"))
import rotated_reference as ref  # noqa: E402

import shapely.geometry as shapely_geometry  # noqa: E402  (a test dependency: bootstrap installs it)


def random_boxes(n: int, seed: int) -> np.ndarray:
    rng = np.random.RandomState(seed)
    return np.concatenate(
        [rng.uniform(20, 180, (n, 2)), rng.uniform(1, 40, (n, 2)), rng.uniform(-720, 720, (n, 1))], axis=1
    )


def float64_boxes(boxes: np.ndarray) -> RotatedBoxes:
    """RotatedBoxes holding float64 values (the constructor makes float32, as upstream)."""
    b = RotatedBoxes(torch.zeros(0, 5))
    b.tensor = torch.from_numpy(np.array(boxes, dtype=np.float64))
    return b


def same_polygon(box, points, atol=1e-6) -> None:
    """The corners of `box` equal `points` (any start, either direction) up to atol."""
    corners = ref.corners(box)
    points = np.asarray(points, dtype=np.float64)
    for order in (points, points[::-1]):
        for shift in range(4):
            if np.allclose(corners, np.roll(order, shift, axis=0), atol=atol, rtol=0):
                return
    raise AssertionError(f"corners {corners.tolist()} != {points.tolist()}")


def test_area_matches_polygon():
    boxes = random_boxes(50, seed=1)
    area = RotatedBoxes(torch.from_numpy(boxes)).area().double().numpy()
    np.testing.assert_allclose(area, [shapely_geometry.Polygon(ref.corners(b)).area for b in boxes], rtol=1e-5)


def test_xyxy_conversion_and_inside_box_are_polygon_bounds():
    boxes = random_boxes(50, seed=2)
    bounds = np.array([shapely_geometry.Polygon(ref.corners(b)).bounds for b in boxes])
    xyxy = BoxMode.convert(torch.from_numpy(boxes), BoxMode.XYWHA_ABS, BoxMode.XYXY_ABS).numpy()
    np.testing.assert_allclose(xyxy, bounds, atol=1e-6)
    inside = RotatedBoxes(torch.from_numpy(boxes)).inside_box((150, 170)).numpy()
    expected = (bounds[:, 0] >= 0) & (bounds[:, 1] >= 0) & (bounds[:, 2] < 170) & (bounds[:, 3] < 150)
    margin = np.minimum.reduce([bounds[:, 0], bounds[:, 1], 170 - bounds[:, 2], 150 - bounds[:, 3]])
    decided = np.abs(margin) > 1e-3  # float32 boxes: skip edges within rounding
    assert (inside[decided] == expected[decided]).all() and (~expected).any() and expected.any()


def test_clip_keeps_near_horizontal_boxes_inside_the_image():
    boxes = random_boxes(40, seed=3)
    boxes[:20, 4] = np.random.RandomState(4).uniform(-1, 1, 20) + 360.0 * np.random.RandomState(5).randint(-2, 3, 20)
    b = RotatedBoxes(torch.from_numpy(boxes))
    b.clip((120, 150), clip_angle_threshold=1.0)
    for row in b.tensor[:20].double().numpy():
        x0, y0, x1, y1 = shapely_geometry.Polygon(ref.corners(row)).bounds
        # A box within 1 degree of horizontal may stick out by sin(1 deg) of its height.
        slack = math.sin(math.radians(1.0)) * max(row[2], row[3]) + 1e-4
        assert x0 >= -slack and y0 >= -slack and x1 <= 150 + slack and y1 <= 120 + slack
    # The others keep their polygon (only their angles are normalised into [-180, 180)).
    rest = b.tensor[20:].double().numpy()
    np.testing.assert_allclose(rest[:, :4], np.asarray(boxes[20:, :4], dtype=np.float32), rtol=1e-6)
    turns = (rest[:, 4] - np.asarray(boxes[20:, 4], dtype=np.float32)) / 360.0
    np.testing.assert_allclose(turns, np.round(turns), atol=1e-5)
    assert ((rest[:, 4] >= -180) & (rest[:, 4] < 180)).all()


def test_get_centers_is_the_polygon_centroid():
    boxes = random_boxes(20, seed=6)
    centroids = [shapely_geometry.Polygon(ref.corners(b)).centroid.coords[0] for b in boxes]
    np.testing.assert_allclose(RotatedBoxes(torch.from_numpy(boxes)).get_centers().numpy(), centroids, atol=1e-4)


@pytest.mark.parametrize("sx,sy", [(2.0, 2.0), (0.5, 0.5)])
def test_uniform_scale_scales_the_polygon(sx, sy):
    boxes = random_boxes(30, seed=7)
    b = RotatedBoxes(torch.from_numpy(boxes))
    b.scale(sx, sy)
    for before, after in zip(boxes, b.tensor.double().numpy()):
        same_polygon(after, ref.corners(before) * [sx, sy], atol=1e-3)


def test_non_uniform_scale_follows_the_scaled_height_edge():
    # A non-uniform scale makes a parallelogram; the box keeps its centre, the lengths
    # of both scaled edge vectors, and the direction of the scaled height edge.
    boxes = random_boxes(30, seed=8)
    sx, sy = 1.7, 0.6
    b = float64_boxes(boxes)
    b.scale(sx, sy)
    for before, after in zip(boxes, b.tensor.numpy()):
        c = ref.corners(before) * [sx, sy]
        width_edge, height_edge = c[1] - c[0], c[2] - c[1]
        assert after[:2] == pytest.approx(c.mean(axis=0), abs=1e-9)
        assert after[2] == pytest.approx(np.linalg.norm(width_edge), rel=1e-9)
        assert after[3] == pytest.approx(np.linalg.norm(height_edge), rel=1e-9)
        t = math.radians(after[4])
        direction = np.array([math.sin(t), math.cos(t)])  # the height direction of `after`
        assert np.allclose(direction, height_edge / np.linalg.norm(height_edge), atol=1e-9)


def test_resize_transform_equals_rotated_boxes_scale():
    # The case of issue 12 (16.1 vs 49.1 degrees before the fix), then random boxes.
    t = T.ResizeTransform(100, 100, 300, 100)  # sx = 1, sy = 3
    one = np.array([[50.0, 50.0, 20.0, 10.0, 21.0]])
    rb = float64_boxes(one)
    rb.scale(1.0, 3.0)
    np.testing.assert_allclose(t.apply_rotated_box(one), rb.tensor.numpy(), atol=1e-9)
    boxes = random_boxes(40, seed=9)
    for h, w, nh, nw in ((100, 200, 50, 300), (480, 640, 800, 1333), (30, 30, 30, 30)):
        t = T.ResizeTransform(h, w, nh, nw)
        rb = float64_boxes(boxes)
        rb.scale(nw / w, nh / h)
        np.testing.assert_allclose(t.apply_rotated_box(boxes), rb.tensor.numpy(), atol=1e-9)


def test_hflip_mirrors_the_polygon():
    boxes = random_boxes(30, seed=10)
    out = T.HFlipTransform(200).apply_rotated_box(boxes)
    for before, after in zip(boxes, out):
        mirrored = ref.corners(before) * [-1, 1] + [200, 0]
        same_polygon(after, mirrored)


@pytest.mark.parametrize("expand", [True, False])
@pytest.mark.parametrize("angle", [30.0, -75.0, 90.0, 400.0])
def test_rotation_transform_rotates_the_polygon(angle, expand):
    import cv2  # noqa: F401  (RotationTransform warps with OpenCV)
    boxes = random_boxes(30, seed=11)
    t = T.RotationTransform(200, 240, angle, expand=expand)
    out = t.apply_rotated_box(boxes)
    for before, after in zip(boxes, out):
        same_polygon(after, t.apply_coords(ref.corners(before)), atol=1e-6)
    assert out.shape == boxes.shape
    np.testing.assert_allclose(T.RotationTransform(200, 240, 360.0).apply_rotated_box(boxes), boxes)


def test_box_coder_round_trip_gives_the_same_polygon(device):
    coder = Box2BoxTransformRotated((10.0, 10.0, 5.0, 5.0, 1.0))
    src = torch.from_numpy(random_boxes(64, seed=12)).to(device)
    tgt = torch.from_numpy(random_boxes(64, seed=13)).to(device)
    decoded = coder.apply_deltas(coder.get_deltas(src, tgt), src)
    iou = box_iou_rotated(decoded, tgt).diagonal()
    torch.testing.assert_close(iou.cpu(), torch.ones(64, dtype=torch.float64), atol=1e-9, rtol=0)
    torch.testing.assert_close(decoded[:, :4], tgt[:, :4])
    assert ((decoded[:, 4] >= -180) & (decoded[:, 4] < 180)).all()


def test_rotated_evaluator_iou_is_exact():
    from detectron2.evaluation.rotated_coco_evaluation import RotatedCOCOeval

    dt = random_boxes(8, seed=14).tolist()
    gt = random_boxes(6, seed=15)
    gt[:, :2] = np.asarray(dt)[:6, :2] + 3.0  # real overlaps
    got = RotatedCOCOeval.compute_iou_dt_gt(RotatedCOCOeval.__new__(RotatedCOCOeval), dt, gt.tolist(), [0] * 6)
    for i, p in enumerate(np.asarray(dt, dtype=np.float32).astype(np.float64)):
        for j, q in enumerate(gt.astype(np.float32).astype(np.float64)):
            pp, qq = shapely_geometry.Polygon(ref.corners(p)), shapely_geometry.Polygon(ref.corners(q))
            inter = pp.intersection(qq).area
            assert got[i, j] == pytest.approx(inter / (pp.area + qq.area - inter), abs=2e-5)
    assert (got > 0.05).sum() >= 4


def test_visualizer_draws_the_same_polygon():
    from detectron2.utils.visualizer import _rotated_box_corners

    for box in random_boxes(20, seed=16):
        same_polygon(box, _rotated_box_corners(*box))
