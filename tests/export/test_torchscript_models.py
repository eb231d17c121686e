"""Scripting whole detectors with scripting_with_instances: outputs equal to eager."""
import pytest
import torch
from torch import Tensor

from detectron2.export import dump_torchscript_IR, scripting_with_instances
from detectron2.modeling.postprocessing import detector_postprocess
from detectron2.structures import Boxes, Instances
from detectron2.utils.testing import (
    assert_instances_allclose,
    convert_scripted_instances,
    reload_script_model,
)

from export_toys import MASK_RCNN, MASK_RCNN_C4, RETINANET, images, small_model

RCNN_FIELDS = {
    "proposal_boxes": Boxes,
    "objectness_logits": Tensor,
    "pred_boxes": Boxes,
    "scores": Tensor,
    "pred_classes": Tensor,
    "pred_masks": Tensor,
    "pred_keypoints": Tensor,
    "pred_keypoint_heatmaps": Tensor,
}


def test_script_rcnn_matches_eager(tmp_path):
    # Mask R-CNN with the keypoint branch on: box, mask and keypoint heads in one model.
    model = small_model(MASK_RCNN, keypoint_on=True)
    scripted = reload_script_model(scripting_with_instances(model, RCNN_FIELDS))
    # A batch of two sizes: padding and per-image splitting are compiled too.
    inputs = [{"image": im} for im in images(1)]
    with torch.no_grad():
        expected = model.inference(inputs, do_postprocess=False)
        got = scripted.inference(inputs, do_postprocess=False)
    assert len(got) == len(expected) == 2
    for e, g in zip(expected, got):
        assert len(e) > 0
        assert_instances_allclose(e, convert_scripted_instances(g))
    # Instances is restored once scripting is done.
    assert not hasattr(Instances, "_jit_override_qualname")
    dump_torchscript_IR(scripted, str(tmp_path))
    assert "forward" in (tmp_path / "model_ts_code.txt").read_text()
    assert (tmp_path / "model_ts_IR_inlined.txt").stat().st_size > 0


def test_script_c4_rcnn_matches_eager():
    # Res5ROIHeads: the box and mask heads share the res5 stage
    model = small_model(MASK_RCNN_C4)
    fields = {k: RCNN_FIELDS[k] for k in ("proposal_boxes", "objectness_logits", "pred_boxes", "scores",
                                          "pred_classes", "pred_masks")}
    scripted = scripting_with_instances(model, fields)
    inputs = [{"image": im} for im in images(6)]
    with torch.no_grad():
        expected = model.inference(inputs, do_postprocess=False)
        got = scripted.inference(inputs, do_postprocess=False)
    for e, g in zip(expected, got):
        assert len(e) > 0
        assert_instances_allclose(e, convert_scripted_instances(g))


def test_script_retinanet_matches_eager():
    model = small_model(RETINANET)
    fields = {"pred_boxes": Boxes, "scores": Tensor, "pred_classes": Tensor}
    scripted = scripting_with_instances(model, fields)
    ims = images(2)
    inputs = [{"image": im} for im in ims]
    with torch.no_grad():
        expected = model(inputs)
        got = scripted(inputs)
    for e, g, im in zip(expected, got, ims):
        g = detector_postprocess(convert_scripted_instances(g), im.shape[1], im.shape[2])
        assert len(e["instances"]) > 0
        assert_instances_allclose(e["instances"], g)


def test_scripting_needs_eval_mode_and_valid_fields():
    model = small_model(RETINANET).train()
    with pytest.raises(AssertionError, match="eval"):
        scripting_with_instances(model, {"scores": Tensor})
    with pytest.raises(ValueError, match="field name"):
        scripting_with_instances(model.eval(), {"not an identifier": Tensor})
    with pytest.raises(TypeError, match="class"):
        scripting_with_instances(model, {"scores": 3})
