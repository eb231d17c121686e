"""Bad annotations in a dataset dict or a COCO json get clear errors instead of silently
becoming other boxes, masks or keypoints (issue 15)."""
import json

import numpy as np
import pytest

from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.data.datasets import load_coco_json
from detectron2.layers._checks import BadInputError
from detectron2.structures import BoxMode

SQUARE = [1.0, 1.0, 6.0, 1.0, 6.0, 6.0, 1.0, 6.0]
FLIP = T.TransformList([T.HFlipTransform(10)])
NO_OP = T.TransformList([])


def _anno(**kw):
    a = {"bbox": [1.0, 1.0, 4.0, 4.0], "bbox_mode": BoxMode.XYWH_ABS, "category_id": 0}
    a.update(kw)
    return a


@pytest.mark.parametrize(
    "bbox,mode",
    [
        ([5, 1, -3, 3], BoxMode.XYWH_ABS),
        ([5, 1, 3, -0.5], BoxMode.XYWH_ABS),
        ([5, 1, 2, 4], BoxMode.XYXY_ABS),  # x1 < x0
        ([1, 5, 4, 2], BoxMode.XYXY_ABS),  # y1 < y0
    ],
)
@pytest.mark.parametrize("transforms", [NO_OP, FLIP], ids=["no-op", "hflip"])
def test_negative_box_size(bbox, mode, transforms):
    with pytest.raises(BadInputError, match="negative width or height"):
        utils.transform_instance_annotations(_anno(bbox=bbox, bbox_mode=mode), transforms, (10, 10))
    with pytest.raises(BadInputError, match="negative width or height"):
        utils.annotations_to_instances([_anno(bbox=bbox, bbox_mode=mode)], (10, 10))


def test_zero_size_box_is_accepted_and_flip_is_exact():
    out = utils.transform_instance_annotations(_anno(bbox=[2, 3, 0, 4]), FLIP, (10, 10))
    np.testing.assert_allclose(out["bbox"], [8, 3, 8, 7])
    out = utils.transform_instance_annotations(_anno(bbox=[2, 3, 5, 4]), FLIP, (10, 10))
    np.testing.assert_allclose(out["bbox"], [3, 3, 8, 7])  # independent: 10 - x


@pytest.mark.parametrize("n", [3, 5, 7, 2, 1])
def test_odd_polygon_in_a_dataset_dict(n):
    anno = _anno(segmentation=[SQUARE, list(range(n))])
    with pytest.raises(BadInputError, match=r"segmentation'\]\[1\].*even"):
        utils.transform_instance_annotations(anno, NO_OP, (10, 10))
    for fmt in ("polygon", "bitmask"):
        with pytest.raises(BadInputError, match="even number"):
            utils.annotations_to_instances([_anno(segmentation=[SQUARE, list(range(n))])], (10, 10), mask_format=fmt)


@pytest.mark.parametrize("length", [1, 2, 4, 5, 7, 8])
def test_keypoints_of_the_wrong_length(length):
    kp = [1.0] * length
    with pytest.raises(BadInputError, match=r"keypoints'\] must be x, y, visibility triplets"):
        utils.transform_instance_annotations(_anno(keypoints=kp), NO_OP, (10, 10))
    with pytest.raises(BadInputError, match="triplets"):
        utils.annotations_to_instances([_anno(keypoints=kp)], (10, 10))


def test_keypoints_not_matching_the_dataset_keypoint_count():
    indices = np.array([1, 0, 2])  # three keypoints in the dataset's metadata
    anno = _anno(keypoints=[1, 1, 2] * 2)
    for transforms in (NO_OP, FLIP):
        with pytest.raises(BadInputError, match="has 2 keypoints.*has 3"):
            utils.transform_instance_annotations(dict(anno), transforms, (10, 10), keypoint_hflip_indices=indices)


def test_instances_with_different_keypoint_counts():
    annos = [_anno(keypoints=[1, 1, 2] * 2), _anno(keypoints=[1, 1, 2] * 3)]
    with pytest.raises(BadInputError, match=r"same number of keypoints.*\[2, 3\]"):
        utils.annotations_to_instances(annos, (10, 10))


def test_valid_keypoints_flip_against_a_reference():
    rng = np.random.default_rng(0)
    kp = np.concatenate([rng.uniform(0, 10, (4, 2)), np.full((4, 1), 2.0)], 1)
    indices = np.array([1, 0, 3, 2])
    out = utils.transform_instance_annotations(_anno(keypoints=kp.reshape(-1).tolist()), FLIP, (10, 10),
                                               keypoint_hflip_indices=indices)["keypoints"]
    expected = kp.copy()
    expected[:, 0] = 10 - expected[:, 0]
    np.testing.assert_allclose(out, expected[indices])


def _coco(tmp_path, **ann):
    a = {"id": 11, "image_id": 3, "category_id": 1, "bbox": [1, 1, 4, 4], "iscrowd": 0, "area": 16}
    a.update(ann)
    d = {"images": [{"id": 3, "file_name": "a.jpg", "height": 10, "width": 10}],
         "categories": [{"id": 1, "name": "x"}], "annotations": [a]}
    path = tmp_path / "c.json"
    path.write_text(json.dumps(d))
    return str(path)


@pytest.mark.parametrize("bbox", [[1, 1, -4, 4], [1, 1, 4, -0.1], [1, 1, 4], [1, 1, 4, 4, 5], [1, 1, float("nan"), 4]],
                         ids=["neg-w", "neg-h", "3-numbers", "5-numbers", "nan"])
def test_coco_json_with_a_bad_bbox(tmp_path, bbox):
    path = _coco(tmp_path, bbox=bbox)
    with pytest.raises(BadInputError, match=r"Annotation 11 of image 3: 'bbox'"):
        load_coco_json(path, "")


def test_coco_json_with_keypoints_of_the_wrong_length(tmp_path):
    with pytest.raises(BadInputError, match="Annotation 11 of image 3: 'keypoints'.*got 5"):
        load_coco_json(_coco(tmp_path, keypoints=[1, 2, 2, 3, 1]), "")


def test_coco_json_zero_width_box_loads(tmp_path):
    (record,) = load_coco_json(_coco(tmp_path, bbox=[1, 1, 0, 4]), "")
    assert record["annotations"][0]["bbox"] == [1, 1, 0, 4]


class _Boom:
    def __reduce__(self):
        import os

        return (os.system, ("echo owned",))


def test_proposal_file_naming_code_is_refused(tmp_path):
    import pickle

    from detectron2.checkpoint.safe_load import UnsafeCheckpointError
    from detectron2.data import load_proposals_into_dataset

    path = tmp_path / "proposals.pkl"
    path.write_bytes(pickle.dumps({"ids": [1], "boxes": [_Boom()], "objectness_logits": [np.zeros(1)]}))
    with pytest.raises(UnsafeCheckpointError, match="os.system|posix.system"):
        load_proposals_into_dataset([{"image_id": 1}], str(path))
