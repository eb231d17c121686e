import contextlib
import io
import json
import os

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets.shapes import (
    SHAPE_CLASSES,
    SHAPES_KEYPOINT_FLIP_MAP,
    SHAPES_KEYPOINT_NAMES,
    generate_shapes_dataset,
    register_shapes,
)
from detectron2.structures import BoxMode


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("shapes"))
    generate_shapes_dataset(root, num_images=12, image_size=96, seed=5)
    return root


def _files(root):
    names = sorted(os.listdir(os.path.join(root, "images")))
    return [open(os.path.join(root, "images", n), "rb").read() for n in names]


def test_deterministic_by_seed(shapes_root, tmp_path):
    again = str(tmp_path / "again")
    generate_shapes_dataset(again, num_images=12, image_size=96, seed=5)
    assert open(os.path.join(again, "annotations.json")).read() == open(os.path.join(shapes_root, "annotations.json")).read()
    assert _files(again) == _files(shapes_root)
    # image i depends only on (seed, i), not on the number of images
    fewer = str(tmp_path / "fewer")
    generate_shapes_dataset(fewer, num_images=3, image_size=96, seed=5)
    assert _files(fewer) == _files(shapes_root)[:3]
    other = str(tmp_path / "other")
    generate_shapes_dataset(other, num_images=3, image_size=96, seed=6)
    assert _files(other) != _files(shapes_root)[:3]
    assert not [f for f in os.listdir(again) if ".tmp" in f]  # the json was moved into place


def test_cached_unless_params_change(tmp_path):
    root = str(tmp_path)
    path = generate_shapes_dataset(root, num_images=2, image_size=64, seed=0)
    mtime = os.stat(path).st_mtime_ns
    assert generate_shapes_dataset(root, num_images=2, image_size=64, seed=0) == path
    assert os.stat(path).st_mtime_ns == mtime
    generate_shapes_dataset(root, num_images=2, image_size=64, seed=1)
    assert json.load(open(path))["info"]["generator"]["seed"] == 1
    os.remove(os.path.join(root, "images", "000001.png"))  # incomplete: regenerated
    generate_shapes_dataset(root, num_images=2, image_size=64, seed=1)
    assert os.path.isfile(os.path.join(root, "images", "000001.png"))


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="shape sizes"):
        generate_shapes_dataset(str(tmp_path), num_images=1, image_size=32, min_shape_size=40)
    with pytest.raises(ValueError, match="max_shapes"):
        generate_shapes_dataset(str(tmp_path), num_images=1, max_shapes=0)


def test_valid_coco_and_masks_match_pixels(shapes_root):
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(os.path.join(shapes_root, "annotations.json"))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(SHAPE_CLASSES)
    assert len(coco.getImgIds()) == 12
    kinds = set()
    for img in coco.loadImgs(coco.getImgIds()):
        image = cv2.imread(os.path.join(shapes_root, "images", img["file_name"])).astype(np.float64)
        assert image.shape == (96, 96, 3)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img["id"]))
        assert 1 <= len(anns) <= 4
        masks = [coco.annToMask(a) for a in anns]
        union = np.clip(sum(masks), 0, 1)
        assert union.sum() == sum(m.sum() for m in masks)  # shapes do not overlap
        background = image[cv2.dilate(union, np.ones((5, 5), np.uint8)) == 0].mean(axis=0)
        for a, m in zip(anns, masks):
            kinds.add(a["category_id"])
            x, y, w, h = a["bbox"]
            assert abs(m.sum() - a["area"]) <= 0.1 * a["area"] + 4 * (w + h) ** 0.5
            assert a["area"] <= w * h * 1.001  # bbox and area are rounded to 3 decimals
            inner = cv2.erode(m, np.ones((5, 5), np.uint8)).astype(bool)
            assert inner.any()
            shape_color = image[inner].mean(axis=0)
            assert np.abs(shape_color - background).sum() > 30  # the mask lies on a visible shape
            assert a["num_keypoints"] == 4 and a["keypoints"][2::3] == [2, 2, 2, 2]
    assert kinds == {1, 2, 3}


def test_register_and_keypoints_exact(shapes_root):
    name = "test_shapes_register"
    register_shapes(name, shapes_root)
    try:
        meta = MetadataCatalog.get(name)
        assert meta.thing_classes == list(SHAPE_CLASSES)
        assert meta.keypoint_names == SHAPES_KEYPOINT_NAMES
        assert all(a in meta.keypoint_names and b in meta.keypoint_names for a, b in meta.keypoint_flip_map)
        assert meta.keypoint_flip_map == SHAPES_KEYPOINT_FLIP_MAP
        dicts = DatasetCatalog.get(name)
        assert len(dicts) == 12
        for ann in (a for d in dicts for a in d["annotations"]):
            assert ann["bbox_mode"] == BoxMode.XYWH_ABS
            poly = np.asarray(ann["segmentation"][0]).reshape(-1, 2)
            kps = np.asarray(ann["keypoints"]).reshape(4, 3)[:, :2]
            x, y, w, h = ann["bbox"]
            assert np.allclose(poly.min(0), [x, y], atol=1e-3) and np.allclose(poly.max(0), [x + w, y + h], atol=1e-3)
            # after load_coco_json's +0.5, the keypoints are exact: vertices (the
            # square's "top" is its top edge's midpoint) and the box centre
            kind = SHAPE_CLASSES[ann["category_id"]]
            for k in kps[:3] if kind != "square" else kps[1:3]:
                assert np.abs(poly - k).sum(axis=1).min() < 2e-3
            if kind == "square":
                assert np.allclose(kps[0], [x + w / 2, y], atol=2e-3)
            assert np.allclose(kps[3], [x + w / 2, y + h / 2], atol=2e-3)
            assert kps[1, 0] < kps[2, 0] and kps[0, 1] < kps[1, 1]  # left is left, top is up
            if SHAPE_CLASSES[ann["category_id"]] == "square":
                assert len(poly) == 4 and w == pytest.approx(h)
            elif SHAPE_CLASSES[ann["category_id"]] == "triangle":
                assert len(poly) == 3
            else:
                assert len(poly) == 32
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
