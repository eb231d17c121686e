import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch

from detectron2.structures import BitMasks, Boxes, PolygonMasks, ROIMasks, polygons_to_bitmask
from detectron2.structures.masks import polygon_area, rasterize_polygons_within_box

SQUARE = [2.0, 2.0, 8.0, 2.0, 8.0, 8.0, 2.0, 8.0]
TRIANGLE = [1.0, 1.0, 9.0, 1.0, 1.0, 9.0]


def _coco_reference(polygons, h, w):
    rle = mask_util.merge(mask_util.frPyObjects(polygons, h, w))
    return mask_util.decode(rle).astype(bool)


def test_polygon_area():
    sq = np.array(SQUARE)
    assert polygon_area(sq[0::2], sq[1::2]) == pytest.approx(36.0)
    tri = np.array(TRIANGLE)
    assert polygon_area(tri[0::2], tri[1::2]) == pytest.approx(32.0)
    # Orientation does not change the area.
    assert polygon_area(sq[0::2][::-1], sq[1::2][::-1]) == pytest.approx(36.0)


def test_polygons_to_bitmask_matches_pycocotools():
    polys = [np.array(SQUARE), np.array(TRIANGLE) + 3]
    out = polygons_to_bitmask(polys, 12, 14)
    assert out.dtype == bool and out.shape == (12, 14)
    np.testing.assert_array_equal(out, _coco_reference(polys, 12, 14))
    assert 30 <= out[:, :].sum() <= 80
    empty = polygons_to_bitmask([], 5, 6)
    assert empty.shape == (5, 6) and not empty.any()


def test_rasterize_within_box():
    # The polygon filling its box fills the whole output.
    full = rasterize_polygons_within_box([np.array(SQUARE)], np.array([2.0, 2.0, 8.0, 8.0]), 12)
    assert full.dtype == torch.bool and full.shape == (12, 12) and bool(full.all())
    # The left half of the box: x scaled by 28/6, y by 28/12.
    half = rasterize_polygons_within_box([np.array([0.0, 0.0, 3.0, 0.0, 3.0, 12.0, 0.0, 12.0])], np.array([0.0, 0.0, 6.0, 12.0]), 28)
    ref = _coco_reference([[0.0, 0.0, 14.0, 0.0, 14.0, 28.0, 0.0, 28.0]], 28, 28)
    np.testing.assert_array_equal(half.numpy(), ref)
    # The input polygons are not modified.
    poly = np.array(SQUARE)
    rasterize_polygons_within_box([poly], np.array([1.0, 1.0, 5.0, 5.0]), 7)
    np.testing.assert_array_equal(poly, SQUARE)


def test_polygon_masks_construction_errors():
    with pytest.raises(ValueError, match="list of list"):
        PolygonMasks(np.zeros((2, 6)))
    with pytest.raises(ValueError, match="list of polygons per instance"):
        PolygonMasks([np.array(SQUARE)])
    with pytest.raises(ValueError, match="from 5 coordinates"):
        PolygonMasks([[[0, 0, 1, 1, 2]]])
    with pytest.raises(ValueError, match="from 4 coordinates"):
        PolygonMasks([[[0, 0, 1, 1]]])
    pm = PolygonMasks([[torch.tensor(SQUARE)], [SQUARE, TRIANGLE]])
    assert all(p.dtype == np.float64 for inst in pm.polygons for p in inst)


def test_polygon_masks_boxes_area_nonempty():
    pm = PolygonMasks([[SQUARE], [SQUARE, TRIANGLE], []])
    torch.testing.assert_close(
        pm.get_bounding_boxes().tensor[:2], torch.tensor([[2.0, 2.0, 8.0, 8.0], [1.0, 1.0, 9.0, 9.0]])
    )
    torch.testing.assert_close(pm.area(), torch.tensor([36.0, 68.0, 0.0], dtype=torch.float64))
    assert pm.nonempty().tolist() == [True, True, False]
    assert len(pm) == 3 and repr(pm) == "PolygonMasks(num_instances=3)"
    assert pm.to("cuda") is pm and pm.device == torch.device("cpu")
    assert len(list(pm)) == 3


def test_polygon_masks_indexing_every_form():
    pm = PolygonMasks([[SQUARE], [TRIANGLE], [SQUARE, TRIANGLE]])

    def n_parts(p):
        return [len(inst) for inst in p.polygons]

    assert n_parts(pm[2]) == [2]
    assert n_parts(pm[-3]) == [1]
    assert n_parts(pm[1:]) == [1, 2]
    assert n_parts(pm[[2, 0]]) == [2, 1]
    assert n_parts(pm[torch.tensor([False, True, True])]) == [1, 2]
    assert n_parts(pm[torch.tensor([2, 2])]) == [2, 2]
    assert n_parts(pm[torch.tensor([1], dtype=torch.int32)]) == [1]
    np.testing.assert_array_equal(pm[1].polygons[0][0], TRIANGLE)
    with pytest.raises(ValueError, match="Unsupported tensor dtype"):
        pm[torch.tensor([0.0])]
    with pytest.raises(IndexError):
        pm[torch.tensor([True, False])]
    with pytest.raises(TypeError):
        pm["a"]


def test_polygon_masks_cat():
    a = PolygonMasks([[SQUARE]])
    b = PolygonMasks([[TRIANGLE], [SQUARE]])
    c = PolygonMasks.cat([a, b])
    assert len(c) == 3 and isinstance(c, PolygonMasks)
    with pytest.raises(TypeError):
        PolygonMasks.cat([a, BitMasks(torch.zeros(1, 2, 2))])


def test_polygon_masks_crop_and_resize(device):
    pm = PolygonMasks([[SQUARE], [TRIANGLE]])
    boxes = torch.tensor([[2.0, 2.0, 8.0, 8.0], [0.0, 0.0, 10.0, 10.0]], device=device)
    out = pm.crop_and_resize(boxes, 10)
    assert out.shape == (2, 10, 10) and out.dtype == torch.bool and out.device.type == device.type
    assert bool(out[0].all())
    ref = rasterize_polygons_within_box([np.array(TRIANGLE)], np.array([0.0, 0.0, 10.0, 10.0]), 10)
    torch.testing.assert_close(out[1].cpu(), ref)
    empty = PolygonMasks([]).crop_and_resize(torch.zeros(0, 4, device=device), 7)
    assert empty.shape == (0, 7, 7) and empty.device.type == device.type
    with pytest.raises(ValueError, match="1 boxes for 2 masks"):
        pm.crop_and_resize(boxes[:1], 10)


def test_bitmasks_construction():
    bm = BitMasks(np.ones((2, 3, 4)))
    assert bm.tensor.dtype == torch.bool and bm.image_size == (3, 4) and len(bm) == 2
    assert BitMasks(torch.zeros(2, 3, 4, dtype=torch.uint8)).tensor.dtype == torch.bool
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        BitMasks(torch.zeros(3, 4))
    assert repr(bm) == "BitMasks(num_instances=2)"


def test_bitmasks_from_polygons_matches_pycocotools():
    polys = [[SQUARE], [SQUARE, TRIANGLE]]
    bm = BitMasks.from_polygon_masks(PolygonMasks(polys), 12, 11)
    assert bm.tensor.shape == (2, 12, 11)
    for i, p in enumerate(polys):
        np.testing.assert_array_equal(bm.tensor[i].numpy(), _coco_reference([np.array(x) for x in p], 12, 11))
    same = BitMasks.from_polygon_masks([[np.array(SQUARE)]], 12, 11)
    torch.testing.assert_close(same.tensor[0], bm.tensor[0])
    empty = BitMasks.from_polygon_masks([], 4, 5)
    assert empty.tensor.shape == (0, 4, 5)


def test_bitmasks_boxes_nonempty_indexing_cat():
    t = torch.zeros(3, 8, 9, dtype=torch.bool)
    t[0, 2:5, 1:6] = True
    t[2, 7, 8] = True
    bm = BitMasks(t)
    torch.testing.assert_close(
        bm.get_bounding_boxes().tensor,
        torch.tensor([[1.0, 2.0, 6.0, 5.0], [0.0, 0.0, 0.0, 0.0], [8.0, 7.0, 9.0, 8.0]]),
    )
    assert isinstance(bm.get_bounding_boxes(), Boxes)
    assert bm.nonempty().tolist() == [True, False, True]
    assert bm[0].tensor.shape == (1, 8, 9)
    torch.testing.assert_close(bm[1:].tensor, t[1:])
    torch.testing.assert_close(bm[torch.tensor([True, False, True])].tensor, t[[0, 2]])
    torch.testing.assert_close(bm[torch.tensor([2, 0])].tensor, t[[2, 0]])
    with pytest.raises(IndexError, match="returns a tensor with shape"):
        bm[0, 0]
    assert len(list(bm)) == 3
    cat = BitMasks.cat([bm, bm[:1]])
    assert len(cat) == 4 and isinstance(cat, BitMasks)
    with pytest.raises(TypeError):
        BitMasks.cat([bm, PolygonMasks([[SQUARE]])])


def test_bitmasks_to(device):
    bm = BitMasks(torch.ones(2, 3, 3)).to(device)
    assert bm.device.type == device.type
    assert bm.nonempty().tolist() == [True, True]


def test_bitmasks_crop_and_resize(device):
    t = torch.zeros(2, 20, 20, dtype=torch.bool)
    t[0, 4:12, 6:16] = True
    t[1, :, :10] = True
    bm = BitMasks(t).to(device)
    boxes = torch.tensor([[6.0, 4.0, 16.0, 12.0], [0.0, 0.0, 20.0, 20.0]], device=device)
    out = bm.crop_and_resize(boxes, 8)
    assert out.shape == (2, 8, 8) and out.dtype == torch.bool and out.device.type == device.type
    assert bool(out[0].all())
    expected = torch.zeros(8, 8, dtype=torch.bool)
    expected[:, :4] = True
    torch.testing.assert_close(out[1].cpu(), expected)
    # Agrees with rasterising the equivalent polygon.
    poly = PolygonMasks([[[6.0, 4.0, 16.0, 4.0, 16.0, 12.0, 6.0, 12.0]]])
    torch.testing.assert_close(poly.crop_and_resize(boxes[:1].cpu(), 8), out[:1].cpu())
    with pytest.raises(ValueError, match="1 boxes for 2 masks"):
        bm.crop_and_resize(boxes[:1], 8)


def test_roimasks_basics():
    with pytest.raises(ValueError, match="3 dimension"):
        ROIMasks(torch.zeros(4, 4))
    rm = ROIMasks(torch.rand(3, 5, 5))
    assert len(rm) == 3 and rm[1:].tensor.shape == (2, 5, 5) and rm[torch.tensor([0])].tensor.shape == (1, 5, 5)
    with pytest.raises(IndexError):
        rm[0]
    assert rm.to("cpu").device.type == "cpu"


def test_roimasks_to_bitmasks(device):
    rm = ROIMasks(torch.ones(2, 4, 4, device=device))
    boxes = torch.tensor([[2.0, 2.0, 6.0, 6.0], [0.0, 5.0, 3.0, 10.0]], device=device)
    bm = rm.to_bitmasks(Boxes(boxes), 10, 12)
    assert isinstance(bm, BitMasks) and bm.tensor.shape == (2, 10, 12)
    expected = torch.zeros(2, 10, 12, dtype=torch.bool)
    expected[0, 2:6, 2:6] = True
    expected[1, 5:10, 0:3] = True
    torch.testing.assert_close(bm.tensor.cpu(), expected)
    torch.testing.assert_close(rm.to_bitmasks(boxes, 10, 12).tensor, bm.tensor)


def test_bitmasks_from_roi_masks():
    rm = ROIMasks(torch.ones(1, 6, 6))
    bm = BitMasks.from_roi_masks(rm, 9, 7)
    assert bm.tensor.shape == (1, 9, 7) and bool(bm.tensor.all())


def _script_bitmasks(x: torch.Tensor):
    m = BitMasks(x)
    return m.nonempty(), m.get_bounding_boxes().tensor, len(m)


def test_bitmasks_torchscript():
    t = torch.zeros(2, 6, 6, dtype=torch.bool)
    t[1, 1:3, 2:5] = True
    scripted = torch.jit.script(_script_bitmasks)
    out, ref = scripted(t), _script_bitmasks(t)
    torch.testing.assert_close(out[0], ref[0])
    torch.testing.assert_close(out[1], ref[1])
    assert out[2] == ref[2] == 2
