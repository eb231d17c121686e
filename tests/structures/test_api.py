import inspect

import detectron2.structures as S

API_NAMES = (
    "Boxes BoxMode pairwise_iou pairwise_ioa pairwise_point_box_distance ImageList Instances Keypoints "
    "heatmaps_to_keypoints BitMasks PolygonMasks polygons_to_bitmask ROIMasks RotatedBoxes pairwise_iou_rotated"
).split()


def test_public_names_exported():
    for name in API_NAMES:
        assert hasattr(S, name), name
        assert name in S.__all__, name
    assert S.pairwise_iou_rotated is S.rotated_boxes.pairwise_iou


def test_upstream_signatures():
    sig = inspect.signature(S.ImageList.from_tensors)
    assert list(sig.parameters) == ["tensors", "size_divisibility", "pad_value", "padding_constraints"]
    assert sig.parameters["size_divisibility"].default == 0
    assert sig.parameters["pad_value"].default == 0.0
    assert sig.parameters["padding_constraints"].default is None
    assert inspect.signature(S.RotatedBoxes.clip).parameters["clip_angle_threshold"].default == 1.0
    assert inspect.signature(S.Boxes.inside_box).parameters["boundary_threshold"].default == 0
    assert inspect.signature(S.Boxes.nonempty).parameters["threshold"].default == 0.0
    assert inspect.signature(S.ROIMasks.to_bitmasks).parameters["threshold"].default == 0.5
    assert [int(m) for m in S.BoxMode] == [0, 1, 2, 3, 4]
    assert [m.name for m in S.BoxMode] == ["XYXY_ABS", "XYWH_ABS", "XYXY_REL", "XYWH_REL", "XYWHA_ABS"]
