"""Visualizer on generated images: drawn pixels appear where the boxes, masks and keypoints
are and nowhere else, colours follow the colour mode, and segmentations are drawn."""
from types import SimpleNamespace

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch

from detectron2.structures import BitMasks, Boxes, BoxMode, Instances, PolygonMasks, RotatedBoxes
from detectron2.utils.visualizer import ColorMode, GenericMask, VisImage, Visualizer, _rotated_box_corners

H, W = 96, 128
BG = (40, 160, 90)  # a coloured background, so that grey mode shows


def _image():
    img = np.zeros((H, W, 3), dtype=np.uint8)
    img[:] = BG
    return img


def _meta(**kw):
    base = dict(thing_classes=["cat", "dog"], thing_colors=[(255, 0, 0), (0, 0, 255)],
                stuff_classes=["sky", "grass", "road"], stuff_colors=[(250, 250, 0), (0, 250, 250), (250, 0, 250)])
    base.update(kw)
    return SimpleNamespace(**base)


def _changed(out, img=None):
    img = _image() if img is None else img
    return np.abs(out.astype(int) - img.astype(int)).sum(axis=2) > 30


def _instances(with_masks=True, with_keypoints=False):
    inst = Instances((H, W))
    inst.pred_boxes = Boxes(torch.tensor([[10.0, 10.0, 60.0, 60.0], [75.0, 20.0, 120.0, 85.0]]))
    inst.scores = torch.tensor([0.9, 0.7])
    inst.pred_classes = torch.tensor([0, 1])
    if with_masks:
        m = torch.zeros(2, H, W, dtype=torch.bool)
        m[0, 20:50, 20:50] = True
        m[1, 40:80, 85:115] = True
        inst.pred_masks = m
    if with_keypoints:
        kp = torch.zeros(2, 3, 3)
        kp[0] = torch.tensor([[30.0, 30.0, 1.0], [45.0, 45.0, 1.0], [5.0, 90.0, 0.0]])
        kp[1] = torch.tensor([[90.0, 60.0, 1.0], [100.0, 70.0, 0.01], [110.0, 80.0, 1.0]])
        inst.pred_keypoints = kp
    return inst


def test_boxes_masks_and_labels_appear_where_the_instances_are():
    np.random.seed(0)
    out = Visualizer(_image(), _meta()).draw_instance_predictions(_instances()).get_image()
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    changed = _changed(out)
    assert changed[35, 35] and changed[60, 100]  # mask interiors
    assert changed[10:12, 30].any() and changed[59:61, 30].any()  # box 0 edges
    assert changed[30, 74:77].any() and changed[30, 119:121].any()  # box 1 edges
    assert not changed[90:, :8].any() and not changed[88:, 62:72].any()  # far from both


def test_keypoints_are_drawn_red_above_the_threshold_only():
    meta = _meta(keypoint_names=["a", "b", "c"], keypoint_connection_rules=[("a", "c", (0, 255, 0)), ("b", "c", (0, 0, 255))])
    inst = _instances(with_masks=False, with_keypoints=True)
    inst.remove("pred_boxes")
    out = Visualizer(_image(), meta).draw_instance_predictions(inst).get_image()
    for x, y in ((30, 30), (45, 45)):  # (lines are drawn over the circles they join)
        r, g, b = out[y, x].astype(int)
        assert r > 200 and g < 100 and b < 100  # keypoint circles
    mid = out[70, 100].astype(int)  # on the green a-c line of instance 1
    assert mid[1] > 200 and mid[0] < 100
    assert not _changed(out)[88:92, 3:7].any()  # score 0: not drawn
    assert not _changed(out)[35:40, 5:10].any()  # no line to an invisible keypoint
    assert out[70, 100, 2] < 100  # b (score 0.01) is below the threshold: no blue b-c line


def test_segmentation_mode_uses_class_colours():
    out = Visualizer(_image(), _meta(), instance_mode=ColorMode.SEGMENTATION).draw_instance_predictions(
        _instances(), jittering=False).get_image()
    # fill alpha 0.8 over the background: cat -> red, dog -> blue
    expect_cat = 0.8 * np.array([255, 0, 0]) + 0.2 * np.array(BG)
    expect_dog = 0.8 * np.array([0, 0, 255]) + 0.2 * np.array(BG)
    np.testing.assert_allclose(out[35, 35], expect_cat, atol=3)
    np.testing.assert_allclose(out[70, 100], expect_dog, atol=3)


def test_image_mode_colours_differ_from_class_colours_and_image_bw_greys_the_background():
    np.random.seed(1)
    out = Visualizer(_image(), _meta(), instance_mode=ColorMode.IMAGE_BW).draw_instance_predictions(_instances()).get_image()
    far = out[90, 2].astype(int)
    assert far[0] == far[1] == far[2]  # grey outside the masks
    assert abs(far[0] - int(np.mean(BG))) <= 1
    inside = out[35, 35].astype(int)
    assert not (inside[0] == inside[1] == inside[2])  # masks keep (tinted) colour


def test_sem_seg_regions_take_stuff_colours_and_unknown_labels_are_skipped():
    sem = np.zeros((H, W), dtype=np.int64)
    sem[:, 64:] = 1
    sem[:20, :20] = 7  # beyond stuff_classes: left alone
    out = Visualizer(_image(), _meta()).draw_sem_seg(torch.from_numpy(sem), alpha=1.0).get_image()
    np.testing.assert_allclose(out[85, 30], [250, 250, 0], atol=3)  # away from the labels
    np.testing.assert_allclose(out[85, 100], [0, 250, 250], atol=3)
    np.testing.assert_array_equal(out[8, 8], BG)
    with pytest.raises(ValueError, match="sem_seg"):
        Visualizer(_image(), _meta()).draw_sem_seg(np.zeros((H + 1, W), dtype=np.int64))


def _panoptic():
    pan = torch.zeros((H, W), dtype=torch.int32)  # 0: void
    pan[:, :40] = 1
    pan[30:70, 60:100] = 2
    info = [{"id": 1, "category_id": 1, "isthing": False}, {"id": 2, "category_id": 0, "isthing": True, "score": 0.9}]
    return pan, info


def test_panoptic_draws_stuff_and_things():
    pan, info = _panoptic()
    out = Visualizer(_image(), _meta(), instance_mode=ColorMode.SEGMENTATION).draw_panoptic_seg(pan, info, alpha=1.0)
    img = out.get_image()
    np.testing.assert_allclose(img[80, 20], [0, 250, 250], atol=3)  # stuff "grass"
    r, g, b = img[65, 65].astype(int)
    assert r > 150 and b < 120  # the cat, near red (jittered)
    np.testing.assert_array_equal(img[90, 120], BG)  # void


def test_panoptic_without_segments_info_uses_the_label_divisor():
    pan = torch.full((H, W), -1, dtype=torch.int64)
    pan[:, :40] = 2 * 1000  # stuff class 2
    pan[30:70, 60:100] = 1 * 1000 + 3  # thing class 1, instance 3
    meta = _meta(label_divisor=1000, thing_dataset_id_to_contiguous_id={7: 0, 9: 1})
    img = Visualizer(_image(), meta, instance_mode=ColorMode.IMAGE_BW).draw_panoptic_seg(pan, None, alpha=1.0).get_image()
    np.testing.assert_allclose(img[80, 20], [250, 0, 250], atol=3)
    far = img[90, 120].astype(int)
    assert far[0] == far[1] == far[2]  # void turns grey in IMAGE_BW
    with pytest.raises(ValueError, match="label_divisor"):
        Visualizer(_image(), _meta()).draw_panoptic_seg(pan, None)


def test_rotated_boxes_are_drawn_along_the_rotated_edges():
    boxes = RotatedBoxes(torch.tensor([[64.0, 48.0, 70.0, 24.0, 30.0]]))
    out = Visualizer(_image(), _meta()).overlay_instances(boxes=boxes, labels=["r"], assigned_colors=["r"]).get_image()
    corners = _rotated_box_corners(64.0, 48.0, 70.0, 24.0, 30.0)
    changed = _changed(out)
    # 30 degrees counter-clockwise on screen: the right end goes up
    assert corners[2][1] < corners[1][1] and corners[3][1] < corners[0][1]
    x, y = (np.array(corners[2]) + np.array(corners[3])) / 2  # middle of the right edge
    assert changed[int(round(y)) - 1:int(round(y)) + 2, int(round(x)) - 1:int(round(x)) + 2].any()
    assert not changed[2:6, 2:6].any() and not changed[48, 64]  # outside, and the centre


def test_dataset_dict_annotations():
    dic = {
        "annotations": [
            {"bbox": [10, 10, 40, 40], "bbox_mode": BoxMode.XYWH_ABS, "category_id": 0,
             "segmentation": [[15, 15, 45, 15, 45, 45, 15, 45]], "keypoints": [30, 30, 2, 0, 0, 0]},
            {"bbox": [70, 20, 120, 80], "bbox_mode": BoxMode.XYXY_ABS, "category_id": 1, "iscrowd": 1,
             "segmentation": mask_util.encode(np.asfortranarray(_box_mask(30, 70, 80, 110))),
             "keypoints": [90, 50, 2, 0, 0, 0]},
        ],
        "sem_seg": np.full((H, W), 255, dtype=np.uint8),
    }
    out = Visualizer(_image(), _meta(keypoint_names=["p", "q"]),
                     instance_mode=ColorMode.SEGMENTATION).draw_dataset_dict(dic).get_image()
    changed = _changed(out)
    assert changed[20, 20] and changed[40, 95]
    assert not changed[90, 2]
    assert out[30, 30, 0] > 200 and out[30, 30, 1] < 100  # keypoint in red


def _box_mask(y0, x0, y1, x1):
    m = np.zeros((H, W), dtype=np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def test_generic_mask_formats_agree():
    mask = _box_mask(10, 20, 40, 60)
    from_array = GenericMask(mask, H, W)
    assert not from_array.has_holes and len(from_array.polygons) == 1
    np.testing.assert_allclose(from_array.bbox(), [20, 10, 60, 40], atol=1)
    from_polygons = GenericMask([p.tolist() for p in from_array.polygons], H, W)
    # contours run through boundary pixel centres: the polygon loses half a pixel per side
    assert abs(from_polygons.area() - int(mask.sum())) <= 0.1 * mask.sum()
    rle = mask_util.encode(np.asfortranarray(mask))
    assert GenericMask(rle, H, W).area() == mask.sum()
    holed = mask.copy()
    holed[20:30, 30:50] = 0
    assert GenericMask(holed, H, W).has_holes
    with pytest.raises(ValueError, match="GenericMask"):
        GenericMask(3.0, H, W)


def test_mask_with_a_hole_leaves_the_hole_undrawn():
    holed = _box_mask(10, 20, 70, 100)
    holed[30:50, 45:75] = 0
    out = Visualizer(_image()).draw_binary_mask(holed, color="r", alpha=0.9).get_image()
    assert _changed(out)[15, 25] and not _changed(out)[40, 60]


def test_structure_inputs_and_soft_masks():
    vis = Visualizer(_image(), _meta())
    masks = BitMasks(torch.from_numpy(np.stack([_box_mask(5, 5, 30, 30), _box_mask(50, 70, 90, 120)]).astype(bool)))
    vis.overlay_instances(masks=masks, labels=["a", "b"])
    polys = PolygonMasks([[np.array([40.0, 5, 60, 5, 60, 25, 40, 25])]])
    vis.overlay_instances(masks=polys)
    soft = np.zeros((H, W), dtype=np.float32)
    soft[60:90, 5:40] = 1.0
    vis.draw_soft_mask(soft, color=(1.0, 0.0, 1.0), text="soft")
    out = vis.get_output().get_image()
    changed = _changed(out)
    assert changed[15, 15] and changed[70, 95] and changed[15, 50] and changed[75, 20]
    assert not changed[40, 60]


def test_primitives_text_line_circle_and_scale(tmp_path):
    vis = Visualizer(_image(), scale=2.0)
    vis.draw_line([0, W], [48, 48], color="k", linewidth=2)
    vis.draw_circle((100, 20), color="w", radius=4)
    vis.draw_text("hi", (30, 70), color="y")
    out = vis.get_output().get_image()
    assert out.shape == (2 * H, 2 * W, 3)
    assert out[96, 40].max() < 30  # black line at y=48 (x2)
    assert out[40, 200].min() > 220  # white circle
    assert _changed(out, np.kron(_image(), np.ones((2, 2, 1), dtype=np.uint8)))[140:160, 55:80].any()
    path = tmp_path / "out.png"
    vis.get_output().save(str(path))
    assert path.stat().st_size > 0


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="img_rgb"):
        Visualizer(np.zeros((H, W, 5), dtype=np.uint8))
    with pytest.raises(ValueError, match="differ in length"):
        Visualizer(_image()).overlay_instances(boxes=np.zeros((2, 4)), labels=["a"])
    assert isinstance(Visualizer(_image()).overlay_instances(), VisImage)


def test_grayscale_input_and_empty_predictions():
    gray = np.full((H, W), 77, dtype=np.uint8)
    out = Visualizer(gray).draw_instance_predictions(Instances((H, W), pred_boxes=Boxes(torch.zeros(0, 4)),
                                                               scores=torch.zeros(0), pred_classes=torch.zeros(0, dtype=torch.int64)))
    np.testing.assert_array_equal(out.get_image(), np.full((H, W, 3), 77, dtype=np.uint8))


def test_coco_skeleton_joins_nose_shoulders_and_hips():
    names = ["nose", "left_shoulder", "right_shoulder", "left_hip", "right_hip"]
    kp = np.array([[[64, 10, 1], [44, 30, 1], [84, 30, 1], [50, 80, 1], [78, 80, 1]]], dtype=np.float32)
    out = Visualizer(_image(), _meta(keypoint_names=names)).overlay_instances(keypoints=kp).get_image()
    for x, y in ((64, 20), (64, 55)):  # nose -> mid-shoulder (64, 30) -> mid-hip (64, 80)
        r, g, b = out[y, x].astype(int)
        assert r > 200 and g < 100 and b < 100
    assert not _changed(out)[50:60, 5:15].any()
