"""Bad inputs to structures get clear errors (argument, expected, given), of a type that
is also what upstream raised (issue 15)."""
import numpy as np
import pytest
import torch

from detectron2.structures.boxes import pairwise_intersection
from detectron2.layers._checks import BadInputError, BadTypeError
from detectron2.structures import (
    BitMasks,
    Boxes,
    ImageList,
    Instances,
    PolygonMasks,
    pairwise_ioa,
    pairwise_iou,
    polygons_to_bitmask,
)


@pytest.mark.parametrize("n", [1, 3, 5, 7, 9, 4, 2])
def test_polygon_with_odd_or_too_few_coordinates(n):
    poly = np.arange(n, dtype=np.float64)
    with pytest.raises(BadInputError, match=f"{n} coordinates"):
        PolygonMasks([[poly]])
    with pytest.raises(AssertionError):  # upstream asserted
        PolygonMasks([[list(poly)]])


@pytest.mark.parametrize("n", [3, 5, 7, 2])
def test_polygons_to_bitmask_rejects_odd_polygons(n):
    good = np.array([0, 0, 4, 0, 4, 4], dtype=np.float64)
    with pytest.raises(BadInputError, match=r"polygons\[1\].*even number"):
        polygons_to_bitmask([good, np.arange(n, dtype=np.float64)], 8, 8)


def test_polygons_to_bitmask_matches_a_reference_on_valid_input():
    rng = np.random.default_rng(0)
    for _ in range(5):
        x0, y0 = rng.uniform(0, 10, 2)
        w, h = rng.uniform(2, 10, 2)
        poly = np.array([x0, y0, x0 + w, y0, x0 + w, y0 + h, x0, y0 + h])
        mask = polygons_to_bitmask([poly], 24, 24)
        ys, xs = np.mgrid[0:24, 0:24] + 0.5
        inside = (xs > x0 + 1) & (xs < x0 + w - 1) & (ys > y0 + 1) & (ys < y0 + h - 1)
        assert mask[inside].all()


@pytest.mark.parametrize("sizes,square", [([(10, 12)], 8), ([(10, 12)], 11), ([(4, 4), (9, 3)], 8), ([(5, 20)], 19)])
def test_square_size_smaller_than_an_image(sizes, square):
    tensors = [torch.rand(3, h, w) for h, w in sizes]
    with pytest.raises(BadInputError, match=f"square_size'\\]={square} is smaller"):
        ImageList.from_tensors(tensors, padding_constraints={"square_size": square})


@pytest.mark.parametrize("square", [12, 13, 32])
def test_square_size_at_least_the_images_pads_exactly(square):
    tensors = [torch.rand(3, 10, 12), torch.rand(3, 7, 5)]
    images = ImageList.from_tensors(tensors, padding_constraints={"square_size": square})
    assert images.tensor.shape == (2, 3, square, square)
    for i, t in enumerate(tensors):
        h, w = t.shape[-2:]
        assert torch.equal(images.tensor[i, :, :h, :w], t)
        assert images.tensor[i, :, h:, :].abs().sum() == 0 and images.tensor[i, :, :, w:].abs().sum() == 0


@pytest.mark.parametrize("fn", [pairwise_iou, pairwise_ioa, pairwise_intersection])
@pytest.mark.parametrize("which", [0, 1])
def test_pairwise_functions_given_a_tensor(fn, which):
    b = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    args = [Boxes(b), Boxes(b)]
    args[which] = b
    with pytest.raises(BadTypeError, match=f"boxes{which + 1} must be a Boxes.*Tensor.*Boxes\\(tensor\\)"):
        fn(*args)
    with pytest.raises(AttributeError):  # what upstream raised
        fn(*args)


def test_pairwise_iou_still_matches_a_reference():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(6, 4, generator=g) * 10
    a[:, 2:] += a[:, :2]
    b = torch.rand(5, 4, generator=g) * 10
    b[:, 2:] += b[:, :2]
    ref = torch.zeros(6, 5)
    for i in range(6):
        for j in range(5):
            w = max(0.0, float(min(a[i, 2], b[j, 2]) - max(a[i, 0], b[j, 0])))
            h = max(0.0, float(min(a[i, 3], b[j, 3]) - max(a[i, 1], b[j, 1])))
            area_a = float((a[i, 2] - a[i, 0]) * (a[i, 3] - a[i, 1]))
            area_b = float((b[j, 2] - b[j, 0]) * (b[j, 3] - b[j, 1]))
            ref[i, j] = w * h / (area_a + area_b - w * h)
    torch.testing.assert_close(pairwise_iou(Boxes(a), Boxes(b)), ref)


@pytest.mark.parametrize("fields_a,fields_b", [({"x"}, {"y"}), ({"x", "y"}, {"x"})])
def test_instances_cat_with_missing_fields(fields_a, fields_b):
    a = Instances((5, 5), **{k: torch.zeros(2) for k in fields_a})
    b = Instances((5, 5), **{k: torch.zeros(3) for k in fields_b})
    with pytest.raises(ValueError, match=r"instance_lists\[1\] lacks") as err:
        Instances.cat([a, b])
    assert isinstance(err.value, KeyError)  # upstream's lookup failed with KeyError
    assert "\n" not in str(err.value) and not str(err.value).startswith("'")


@pytest.mark.parametrize("fields_a,fields_b", [({"x"}, {"x", "y"}), (set(), {"x"})])
def test_instances_cat_keeps_the_first_instances_fields(fields_a, fields_b):
    # Upstream concatenates the first instance's fields and drops the others' extras
    # (add_ground_truth_to_proposals depends on it).
    a = Instances((5, 5), **{k: torch.zeros(2) for k in fields_a})
    b = Instances((5, 5), **{k: torch.ones(3) for k in fields_b})
    out = Instances.cat([a, b])
    assert set(out.get_fields()) == fields_a
    if "x" in fields_a:
        assert torch.equal(out.x, torch.tensor([0.0, 0, 1, 1, 1]))


def test_instances_cat_same_fields_in_another_order():
    a = Instances((5, 5), x=torch.zeros(2), y=torch.ones(2))
    b = Instances((5, 5), y=torch.ones(1), x=torch.zeros(1))
    out = Instances.cat([a, b])
    assert len(out) == 3 and torch.equal(out.y, torch.ones(3))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("kind", ["bitmasks", "polygons"])
def test_crop_and_resize_with_non_finite_boxes(bad, kind, device):
    if kind == "bitmasks":
        masks = BitMasks(torch.ones(3, 10, 10, dtype=torch.bool, device=device))
    else:
        masks = PolygonMasks([[np.array([0, 0, 9, 0, 9, 9, 0, 9], dtype=float)]] * 3)
    boxes = torch.tensor([[0.0, 0.0, 5.0, 5.0], [1.0, 1.0, 4.0, 4.0], [0.0, 0.0, 5.0, 5.0]])
    boxes[1, 2] = bad
    with pytest.raises(BadInputError, match=r"boxes must be finite.*rows \[1\]"):
        masks.crop_and_resize(boxes.to(device), 4)


@pytest.mark.parametrize("kind", ["bitmasks", "polygons"])
def test_crop_and_resize_with_boxes_of_the_wrong_shape(kind):
    masks = BitMasks(torch.ones(2, 10, 10, dtype=torch.bool)) if kind == "bitmasks" else PolygonMasks(
        [[np.array([0, 0, 9, 0, 9, 9], dtype=float)]] * 2
    )
    with pytest.raises(BadInputError, match=r"shape \(2, 4\)"):
        masks.crop_and_resize(torch.zeros(2, 5), 4)


def test_crop_and_resize_finite_boxes_still_work(device):
    masks = BitMasks(torch.ones(2, 10, 10, dtype=torch.bool, device=device))
    out = masks.crop_and_resize(torch.tensor([[0.0, 0.0, 5.0, 5.0], [2.0, 2.0, 8.0, 8.0]], device=device), 4)
    assert out.shape == (2, 4, 4) and bool(out.all())
