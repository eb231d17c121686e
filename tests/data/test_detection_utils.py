"""detection_utils: image reading, annotation transforms and Instances construction."""
import sys
import types

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from PIL import Image

from detectron2.config import get_cfg
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.structures import BitMasks, Boxes, BoxMode, Instances, PolygonMasks, RotatedBoxes


def _rgb_image(h=8, w=12):
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = (255, 0, 0)  # left half red
    img[:, w // 2 :] = (0, 0, 255)  # right half blue
    return img


def test_read_image_formats(tmp_path):
    rgb = _rgb_image()
    path = str(tmp_path / "img.png")
    Image.fromarray(rgb).save(path)
    np.testing.assert_array_equal(utils.read_image(path), rgb)
    np.testing.assert_array_equal(utils.read_image(path, "RGB"), rgb)
    bgr = utils.read_image(path, "BGR")
    np.testing.assert_array_equal(bgr, rgb[:, :, ::-1])
    gray = utils.read_image(path, "L")
    assert gray.shape == (8, 12, 1) and gray.dtype == np.uint8
    yuv = utils.read_image(path, "YUV-BT.601")
    assert yuv.dtype == np.float64
    np.testing.assert_allclose(yuv[0, 0, 0], 0.299, atol=1e-6)  # luma of pure red
    np.testing.assert_allclose(utils.convert_image_to_rgb(yuv, "YUV-BT.601"), rgb, atol=0.1)
    np.testing.assert_array_equal(utils.convert_image_to_rgb(bgr, "BGR"), rgb)
    np.testing.assert_array_equal(utils.convert_image_to_rgb(torch.from_numpy(rgb.copy()), "RGB"), rgb)
    as_rgb = utils.convert_image_to_rgb(gray, "L")
    assert as_rgb.shape == (8, 12, 3)
    np.testing.assert_array_equal(as_rgb[..., 0], gray[..., 0])


@pytest.mark.parametrize(
    "orientation,expected",
    [
        (1, lambda a: a),
        (2, lambda a: a[:, ::-1]),
        (3, lambda a: a[::-1, ::-1]),
        (6, lambda a: np.rot90(a, -1)),  # stored rotated: display turns it clockwise
        (8, lambda a: np.rot90(a, 1)),
    ],
)
def test_read_image_applies_exif_orientation(tmp_path, orientation, expected):
    rgb = _rgb_image(16, 24)
    rgb[:4, :4] = (0, 255, 0)  # a green corner to tell the orientation apart
    path = str(tmp_path / "img.jpg")
    exif = Image.Exif()
    exif[274] = orientation
    Image.fromarray(rgb).save(path, exif=exif, quality=100)
    out = utils.read_image(path, "RGB")
    ref = expected(rgb)
    assert out.shape == ref.shape
    assert np.abs(out.astype(int) - ref.astype(int)).mean() < 8  # JPEG is lossy


def test_check_image_size():
    img = np.zeros((10, 20, 3), np.uint8)
    d = {}
    utils.check_image_size(d, img)
    assert d == {"width": 20, "height": 10}
    utils.check_image_size({"width": 20, "height": 10}, img)
    with pytest.raises(utils.SizeMismatchError, match="a.jpg"):
        utils.check_image_size({"file_name": "a.jpg", "width": 10, "height": 20}, img)
    assert issubclass(utils.SizeMismatchError, ValueError)


def test_transform_instance_annotations_box_polygon_flip():
    anno = {
        "bbox": [10, 20, 30, 40],  # XYWH
        "bbox_mode": BoxMode.XYWH_ABS,
        "segmentation": [[10, 20, 40, 20, 40, 60, 10, 60]],
        "category_id": 3,
    }
    tfms = T.TransformList([T.HFlipTransform(100)])
    out = utils.transform_instance_annotations(anno, tfms, (80, 100))
    assert out["bbox_mode"] == BoxMode.XYXY_ABS
    np.testing.assert_allclose(out["bbox"], [60, 20, 90, 60])
    np.testing.assert_allclose(out["segmentation"][0], [90, 20, 60, 20, 60, 60, 90, 60])
    # A list of transforms works too; boxes are clipped to the image.
    anno2 = {"bbox": [-5, -5, 50, 500], "bbox_mode": BoxMode.XYXY_ABS}
    out2 = utils.transform_instance_annotations(anno2, [T.NoOpTransform()], (80, 100))
    np.testing.assert_allclose(out2["bbox"], [0, 0, 50, 80])


def test_transform_instance_annotations_rle_and_bad_segmentation():
    mask = np.zeros((20, 30), np.uint8)
    mask[2:6, 3:9] = 1
    rle = mask_util.encode(np.asfortranarray(mask))
    anno = {"bbox": [3, 2, 9, 6], "bbox_mode": BoxMode.XYXY_ABS, "segmentation": rle}
    out = utils.transform_instance_annotations(anno, T.TransformList([T.HFlipTransform(30)]), (20, 30))
    np.testing.assert_array_equal(out["segmentation"], mask[:, ::-1])
    with pytest.raises(ValueError, match="image_size"):
        anno = {"bbox": [3, 2, 9, 6], "bbox_mode": BoxMode.XYXY_ABS, "segmentation": rle}
        utils.transform_instance_annotations(anno, T.TransformList([]), (10, 30))
    with pytest.raises(ValueError, match="Cannot transform segmentation"):
        utils.transform_instance_annotations(
            {"bbox": [0, 0, 1, 1], "bbox_mode": BoxMode.XYXY_ABS, "segmentation": 5}, [], (10, 10)
        )


def test_transform_keypoints_flip_and_visibility():
    # Three keypoints: "left", "right", "nose"; left and right mirror each other.
    kpts = [10, 10, 2, 30, 10, 2, 20, 5, 1]
    flip_indices = [1, 0, 2]
    tfms = T.TransformList([T.HFlipTransform(40)])
    out = utils.transform_keypoint_annotations(kpts, tfms, (20, 40), flip_indices)
    # After the flip, the "left" slot holds the point that was "right" (x 30 -> 10).
    np.testing.assert_allclose(out, [[10, 10, 2], [30, 10, 2], [20, 5, 1]])
    with pytest.raises(ValueError, match="flip indices"):
        utils.transform_keypoint_annotations(kpts, tfms, (20, 40))
    with pytest.raises(ValueError, match="points"):
        utils.transform_keypoint_annotations(kpts, tfms, (20, 40), [1, 0])
    # Two flips: no index swap needed.
    twice = T.TransformList([T.HFlipTransform(40), T.HFlipTransform(40)])
    np.testing.assert_allclose(utils.transform_keypoint_annotations(kpts, twice, (20, 40)), np.reshape(kpts, (3, 3)))
    # Points that leave the image, and unlabelled points, become all zero.
    crop = T.TransformList([T.CropTransform(15, 0, 20, 20)])
    out = utils.transform_keypoint_annotations(kpts, crop, (20, 20))
    np.testing.assert_allclose(out, [[0, 0, 0], [15, 10, 2], [5, 5, 1]])


def _annos():
    return [
        {
            "bbox": [2, 2, 10, 8],
            "bbox_mode": BoxMode.XYWH_ABS,
            "category_id": 1,
            "segmentation": [[2, 2, 12, 2, 12, 10, 2, 10]],
            "keypoints": np.array([[3, 3, 2], [5, 5, 1]], dtype=np.float64),
        },
        {
            "bbox": [20, 10, 30, 20],
            "bbox_mode": BoxMode.XYXY_ABS,
            "category_id": 0,
            "segmentation": [[20, 10, 30, 10, 25, 20]],
            "keypoints": np.array([[22, 12, 2], [0, 0, 0]], dtype=np.float64),
        },
    ]


def test_annotations_to_instances_polygon():
    inst = utils.annotations_to_instances(_annos(), (32, 40))
    assert isinstance(inst, Instances) and inst.image_size == (32, 40) and len(inst) == 2
    assert isinstance(inst.gt_boxes, Boxes) and inst.gt_boxes.tensor.dtype == torch.float32
    np.testing.assert_allclose(inst.gt_boxes.tensor.numpy(), [[2, 2, 12, 10], [20, 10, 30, 20]])
    assert inst.gt_classes.dtype == torch.int64 and inst.gt_classes.tolist() == [1, 0]
    assert isinstance(inst.gt_masks, PolygonMasks)
    assert inst.gt_keypoints.tensor.shape == (2, 2, 3)
    assert inst.gt_keypoints.tensor.dtype == torch.float32


def test_annotations_to_instances_bitmask_from_polygon_rle_and_array():
    annos = _annos()
    mask = np.zeros((32, 40), np.uint8)
    mask[5:9, 5:9] = 1
    annos.append({"bbox": [5, 5, 9, 9], "bbox_mode": BoxMode.XYXY_ABS, "category_id": 2,
                  "segmentation": mask_util.encode(np.asfortranarray(mask)), "keypoints": np.zeros((2, 3))})
    annos.append({"bbox": [5, 5, 9, 9], "bbox_mode": BoxMode.XYXY_ABS, "category_id": 2,
                  "segmentation": mask.astype(bool), "keypoints": np.zeros((2, 3))})
    inst = utils.annotations_to_instances(annos, (32, 40), mask_format="bitmask")
    assert isinstance(inst.gt_masks, BitMasks)
    assert inst.gt_masks.tensor.shape == (4, 32, 40) and inst.gt_masks.tensor.dtype == torch.bool
    assert inst.gt_masks.tensor[0, 5, 5] and not inst.gt_masks.tensor[0, 20, 20]
    assert inst.gt_masks.tensor[2].sum() == 16 and torch.equal(inst.gt_masks.tensor[2], inst.gt_masks.tensor[3])
    with pytest.raises(ValueError, match="mask_format"):
        utils.annotations_to_instances(_annos(), (32, 40), mask_format="rle")
    with pytest.raises(ValueError, match="polygon"):
        utils.annotations_to_instances(annos, (32, 40), mask_format="polygon")


def test_annotations_to_instances_empty_and_rotated():
    inst = utils.annotations_to_instances([], (10, 10))
    assert len(inst) == 0 and inst.gt_boxes.tensor.shape == (0, 4) and inst.gt_classes.dtype == torch.int64
    rot = utils.annotations_to_instances_rotated(
        [{"bbox": [5, 5, 4, 2, 30], "category_id": 4}, {"bbox": [1, 1, 2, 2, 0], "category_id": 1}], (10, 10)
    )
    assert isinstance(rot.gt_boxes, RotatedBoxes) and rot.gt_boxes.tensor.shape == (2, 5)
    assert rot.gt_classes.tolist() == [4, 1]
    assert len(utils.annotations_to_instances_rotated([], (10, 10))) == 0


def test_filter_empty_instances():
    inst = Instances((10, 10))
    inst.gt_boxes = Boxes(torch.tensor([[0, 0, 5, 5], [2, 2, 2, 8], [1, 1, 4, 4.0]]))
    masks = torch.zeros(3, 10, 10, dtype=torch.bool)
    masks[0, 1, 1] = masks[1, 2, 2] = True  # the third mask is empty
    inst.gt_masks = BitMasks(masks)
    kept, keep = utils.filter_empty_instances(inst, return_mask=True)
    assert keep.tolist() == [True, False, False] and len(kept) == 1
    assert len(utils.filter_empty_instances(inst, by_mask=False)) == 2
    assert len(utils.filter_empty_instances(inst, by_box=False)) == 2
    with pytest.raises(ValueError):
        utils.filter_empty_instances(inst, by_box=False, by_mask=False)


def test_transform_proposals():
    d = {
        "proposal_boxes": np.array([[0, 0, 10, 10], [5, 5, 5.5, 5.5], [2, 2, 50, 50], [1, 1, 3, 3.0]]),
        "proposal_bbox_mode": BoxMode.XYXY_ABS,
        "proposal_objectness_logits": np.array([3.0, 2.0, 1.0, 0.5]),
    }
    utils.transform_proposals(d, (20, 20), T.TransformList([T.HFlipTransform(20)]), proposal_topk=2, min_box_size=1)
    p = d["proposals"]
    assert "proposal_boxes" not in d and len(p) == 2
    np.testing.assert_allclose(p.proposal_boxes.tensor.numpy(), [[10, 0, 20, 10], [0, 2, 18, 20]])
    assert p.objectness_logits.dtype == torch.float32 and p.objectness_logits.tolist() == [3.0, 1.0]
    untouched = {"file_name": "x"}
    utils.transform_proposals(untouched, (20, 20), T.TransformList([]), proposal_topk=2)
    assert untouched == {"file_name": "x"}


def test_gen_crop_transform_with_instance():
    np.random.seed(0)
    inst = {"bbox": [40, 30, 10, 10], "bbox_mode": BoxMode.XYWH_ABS}  # centre (45, 35)
    for _ in range(20):
        t = utils.gen_crop_transform_with_instance((20, 30), (60, 80), inst)
        assert (t.h, t.w) == (20, 30)
        assert t.x0 <= 45 <= t.x0 + t.w and t.y0 <= 35 <= t.y0 + t.h
        assert t.x0 + t.w <= 80 and t.y0 + t.h <= 60
    with pytest.raises(ValueError, match="crop_size"):
        utils.gen_crop_transform_with_instance((100, 30), (60, 80), inst)
    with pytest.raises(ValueError, match="outside"):
        utils.gen_crop_transform_with_instance((10, 10), (20, 20), inst)


class _FakeMetadataCatalog:
    """Stands in for data.catalog.MetadataCatalog (another engineer's module)."""

    store = {}

    @classmethod
    def get(cls, name):
        return cls.store.setdefault(name, types.SimpleNamespace())


@pytest.fixture
def fake_catalog(monkeypatch):
    module = types.ModuleType("detectron2.data.catalog")
    _FakeMetadataCatalog.store = {}
    module.MetadataCatalog = _FakeMetadataCatalog
    monkeypatch.setitem(sys.modules, "detectron2.data.catalog", module)
    return _FakeMetadataCatalog


def test_keypoint_hflip_indices_and_metadata_consistency(fake_catalog):
    names = ["nose", "left_eye", "right_eye", "left_ear", "right_ear"]
    flip = [("left_eye", "right_eye"), ("left_ear", "right_ear")]
    for d in ("a", "b"):
        m = fake_catalog.get(d)
        m.keypoint_names, m.keypoint_flip_map = names, flip
    assert utils.create_keypoint_hflip_indices(["a", "b"]) == [0, 2, 1, 4, 3]
    assert utils.create_keypoint_hflip_indices("a") == [0, 2, 1, 4, 3]
    fake_catalog.get("c").keypoint_names = names[::-1]
    fake_catalog.get("c").keypoint_flip_map = flip
    with pytest.raises(ValueError, match="keypoint_names"):
        utils.create_keypoint_hflip_indices(["a", "c"])
    utils.check_metadata_consistency("keypoint_names", [])


def test_get_fed_loss_cls_weights(fake_catalog):
    fake_catalog.get("lvis").class_image_count = [{"id": 2, "image_count": 4}, {"id": 1, "image_count": 9}]
    w = utils.get_fed_loss_cls_weights("lvis", freq_weight_power=0.5)
    assert torch.allclose(w, torch.tensor([3.0, 2.0]))


def test_build_augmentation_from_cfg():
    cfg = get_cfg()
    train = utils.build_augmentation(cfg, is_train=True)
    assert isinstance(train[0], T.ResizeShortestEdge) and isinstance(train[1], T.RandomFlip)
    assert tuple(train[0].short_edge_length) == (800,) and train[0].max_size == 1333 and not train[0].is_range
    assert train[1].horizontal and not train[1].vertical
    test = utils.build_augmentation(cfg, is_train=False)
    assert len(test) == 1 and test[0].short_edge_length == (800, 800)  # an int becomes (n, n)
    cfg.INPUT.RANDOM_FLIP = "none"
    cfg.INPUT.MIN_SIZE_TRAIN = (640, 800)
    cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING = "range"
    train = utils.build_transform_gen(cfg, is_train=True)
    assert len(train) == 1 and train[0].is_range
    cfg.INPUT.RANDOM_FLIP = "vertical"
    assert utils.build_augmentation(cfg, True)[1].vertical


def test_get_bbox_modes():
    np.testing.assert_allclose(utils.get_bbox({"bbox": [1, 2, 3, 4], "bbox_mode": BoxMode.XYWH_ABS}), [1, 2, 4, 6])
    np.testing.assert_allclose(utils.get_bbox({"bbox": (1, 2, 3, 4), "bbox_mode": BoxMode.XYXY_ABS}), [1, 2, 3, 4])
    rot = utils.get_bbox({"bbox": [5, 5, 4, 2, 0], "bbox_mode": BoxMode.XYWHA_ABS})
    np.testing.assert_allclose(rot, [3, 4, 7, 6])
    with pytest.raises(ValueError, match="4 numbers"):
        utils.get_bbox({"bbox": [1, 2, 3], "bbox_mode": BoxMode.XYXY_ABS})


def test_bgr_is_contiguous_and_exact(tmp_path):
    rgb = np.random.RandomState(0).randint(0, 256, (9, 11, 3)).astype(np.uint8)
    path = str(tmp_path / "noise.png")
    Image.fromarray(rgb).save(path)
    bgr = utils.read_image(path, "BGR")
    assert bgr.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(bgr, rgb[:, :, ::-1])
    np.testing.assert_array_equal(utils.convert_PIL_to_numpy(Image.fromarray(rgb), "BGR"), rgb[:, :, ::-1])


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float32, np.float64])
def test_transform_polygons_keep_the_input_dtype(dtype):
    # Upstream converts nothing: its resize scales the array in place (integers stay
    # integers, truncated by the assignment), flips keep the dtype too.
    from detectron2.data import transforms as T

    rng = np.random.RandomState(0)
    for _ in range(5):
        h, w = rng.randint(10, 200, size=2)
        new_h, new_w = rng.randint(10, 300, size=2)
        poly = (rng.rand(rng.randint(3, 9), 2) * [w, h]).reshape(-1)
        poly = (poly if np.dtype(dtype).kind == "f" else np.floor(poly)).astype(dtype)
        flip, resize = T.HFlipTransform(w), T.ResizeTransform(h, w, new_h, new_w)
        anno = {"bbox": [0, 0, 5, 5], "bbox_mode": BoxMode.XYXY_ABS, "segmentation": [poly.copy()]}
        out = utils.transform_instance_annotations(anno, T.TransformList([flip, resize]), (new_h, new_w))
        got = out["segmentation"][0]
        # Reference, step by step in numpy's own semantics of the same operations.
        ref = poly.reshape(-1, 2).copy()
        ref[:, 0] = w - ref[:, 0]
        ref[:, 0] = ref[:, 0] * (new_w * 1.0 / w)
        ref[:, 1] = ref[:, 1] * (new_h * 1.0 / h)
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(got, ref.reshape(-1))
        # A list of Python ints gives numpy's default integer array, as upstream.
        anno = {"bbox": [0, 0, 5, 5], "bbox_mode": BoxMode.XYXY_ABS, "segmentation": [[1, 2, 3, 4, 5, 6]]}
        out = utils.transform_instance_annotations(anno, T.TransformList([flip]), (h, w))
        assert out["segmentation"][0].dtype == np.asarray([1]).dtype
