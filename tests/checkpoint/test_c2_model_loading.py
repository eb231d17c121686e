"""Detectron1 / Caffe2 name conversion and suffix matching of state dicts."""
import logging

import numpy as np
import pytest
import torch

from detectron2.checkpoint.c2_model_loading import (
    align_and_update_state_dicts,
    convert_basic_c2_names,
    convert_c2_detectron_names,
)

# Detectron1 blob name -> name after conversion (written from the naming conventions:
# branch2a/b/c are the bottleneck's conv1/2/3, branch1 the shortcut, bn_s/bn_b the norm's
# scale/shift, res_conv1 the stem).
BASIC = [
    ("conv1_w", "stem.conv1.weight"),
    ("res_conv1_bn_s", "stem.conv1.norm.weight"),
    ("res_conv1_bn_b", "stem.conv1.norm.bias"),
    ("res_conv1_bn_rm", "stem.conv1.norm.running_mean"),
    ("res_conv1_bn_riv", "stem.conv1.norm.running_var"),
    ("res2_0_branch2a_w", "res2.0.conv1.weight"),
    ("res2_0_branch2a_bn_s", "res2.0.conv1.norm.weight"),
    ("res2_0_branch2a_bn_b", "res2.0.conv1.norm.bias"),
    ("res2_0_branch2b_w", "res2.0.conv2.weight"),
    ("res2_0_branch2c_bn_s", "res2.0.conv3.norm.weight"),
    ("res2_0_branch1_w", "res2.0.shortcut.weight"),
    ("res2_0_branch1_bn_b", "res2.0.shortcut.norm.bias"),
    ("res4_22_branch2b_gn_s", "res4.22.conv2.norm.weight"),
    ("res4_22_branch2b_gn_b", "res4.22.conv2.norm.bias"),
    ("res5_2_branch2c_bn_running_mean", "res5.2.conv3.norm.running_mean"),
    ("res5_2_branch2c_bn_running_var", "res5.2.conv3.norm.running_var"),
    ("res3_1_branch2a_bn_gamma", "res3.1.conv1.norm.weight"),
    ("res3_1_branch2a_bn_beta", "res3.1.conv1.norm.bias"),
]

DETECTRON = [
    ("fpn_inner_res5_2_sum_w", "fpn_lateral5.weight"),
    ("fpn_inner_res2_2_sum_lateral_b", "fpn_lateral2.bias"),
    ("fpn_inner_res3_3_sum_lateral_gn_s", "fpn_lateral3.norm.weight"),
    ("fpn_res4_5_sum_w", "fpn_output4.weight"),
    ("fpn_res2_2_sum_gn_b", "fpn_output2.norm.bias"),
    ("conv_rpn_fpn2_w", "proposal_generator.rpn_head.conv.weight"),
    ("rpn_cls_logits_fpn2_b", "proposal_generator.rpn_head.objectness_logits.bias"),
    ("rpn_bbox_pred_fpn2_w", "proposal_generator.rpn_head.anchor_deltas.weight"),
    ("conv_rpn_w", "proposal_generator.rpn_head.conv.weight"),
    ("rpn_cls_logits_w", "proposal_generator.rpn_head.objectness_logits.weight"),
    ("fc6_w", "box_head.fc1.weight"),
    ("fc7_b", "box_head.fc2.bias"),
    ("head_conv1_w", "box_head.conv1.weight"),
    ("head_conv1_gn_s", "box_head.conv1.norm.weight"),
    ("mask_fcn1_w", "mask_head.mask_fcn1.weight"),
    ("_[mask]_fcn4_b", "mask_head.mask_fcn4.bias"),
    ("conv5_mask_w", "mask_head.deconv.weight"),
    ("conv_fcn2_w", "roi_heads.keypoint_head.conv_fcn2.weight"),
    ("kps_score_lowres_b", "roi_heads.keypoint_head.score_lowres.bias"),
    ("res3_0_branch2a_w", "res3.0.conv1.weight"),
]


@pytest.mark.parametrize("c2, expected", BASIC)
def test_convert_basic_c2_names(c2, expected):
    assert convert_basic_c2_names([c2]) == [expected]


@pytest.mark.parametrize("c2, expected", DETECTRON)
def test_convert_c2_detectron_names(c2, expected):
    value = np.zeros((3, 2), dtype=np.float32)
    new, new_to_old = convert_c2_detectron_names({c2: value})
    assert list(new) == [expected]
    assert new_to_old == {expected: c2}
    assert new[expected] is value


def test_convert_relayouts_predictors():
    num_classes = 3  # Detectron1 stores num_classes + 1 outputs, background first
    cls_w = np.arange(num_classes + 1, dtype=np.float32)[:, None] * np.ones((1, 5), np.float32)
    box_w = np.arange(4 * (num_classes + 1), dtype=np.float32)[:, None] * np.ones((1, 5), np.float32)
    mask_b = np.arange(num_classes + 1, dtype=np.float32)
    new, _ = convert_c2_detectron_names(
        {"cls_score_w": cls_w, "bbox_pred_w": box_w, "mask_fcn_logits_b": mask_b}
    )
    assert set(new) == {"cls_score.weight", "bbox_pred.weight", "mask_head.predictor.bias"}
    np.testing.assert_array_equal(new["cls_score.weight"][:, 0], [1, 2, 3, 0])  # background last
    np.testing.assert_array_equal(new["bbox_pred.weight"][:, 0], np.arange(4, 16))  # no background deltas
    np.testing.assert_array_equal(new["mask_head.predictor.bias"], [1, 2, 3])
    # tensors as well as arrays
    new, _ = convert_c2_detectron_names({"cls_score_b": torch.tensor([9.0, 1.0, 2.0])})
    assert new["cls_score.bias"].tolist() == [1.0, 2.0, 9.0]


def test_convert_rejects_colliding_names():
    with pytest.raises(ValueError, match="conv_rpn_fpn2_w"):
        convert_c2_detectron_names({"conv_rpn_fpn2_w": np.zeros(1), "rpn_conv_fpn2_w": np.zeros(1)})


def _model_sd(**shapes):
    return {k: torch.zeros(s) for k, s in shapes.items()}


def test_align_by_longest_dotted_suffix():
    model = {
        "backbone.bottom_up.res2.0.conv1.weight": torch.zeros(4, 3),
        "backbone.bottom_up.stem.conv1.weight": torch.zeros(2, 3),
        "roi_heads.box_head.fc1.weight": torch.zeros(5),
        "roi_heads.mask_head.fc1.weight": torch.zeros(5),
        "other.xconv1.weight": torch.zeros(2, 3),
    }
    ckpt = {
        "res2.0.conv1.weight": torch.ones(4, 3),
        "stem.conv1.weight": torch.full((2, 3), 2.0),
        "conv1.weight": torch.full((2, 3), 3.0),
        "box_head.fc1.weight": torch.full((5,), 4.0),
        "fc1.weight": torch.full((5,), 5.0),
    }
    out = align_and_update_state_dicts(model, dict(ckpt), c2_conversion=False)
    assert torch.equal(out["backbone.bottom_up.res2.0.conv1.weight"], ckpt["res2.0.conv1.weight"])
    # "stem.conv1.weight" is longer than "conv1.weight": it wins
    assert torch.equal(out["backbone.bottom_up.stem.conv1.weight"], ckpt["stem.conv1.weight"])
    assert torch.equal(out["roi_heads.box_head.fc1.weight"], ckpt["box_head.fc1.weight"])
    assert torch.equal(out["roi_heads.mask_head.fc1.weight"], ckpt["fc1.weight"])
    # a suffix counts only at a "." boundary
    assert "other.xconv1.weight" not in out
    # an unmatched checkpoint key stays, under its name, for the caller to report
    assert torch.equal(out["conv1.weight"], ckpt["conv1.weight"])


def test_align_skips_and_reports_shape_mismatch(caplog):
    model = _model_sd(**{"head.cls.weight": (3, 8), "head.box.weight": (12, 8)})
    ckpt = {"cls.weight": torch.ones(81, 8), "box.weight": torch.ones(12, 8)}
    with caplog.at_level(logging.INFO):
        out = align_and_update_state_dicts(model, ckpt, c2_conversion=False)
    assert "head.cls.weight" not in out
    assert torch.equal(out["head.box.weight"], ckpt["box.weight"])
    assert out["cls.weight"].shape == (81, 8)  # left for the load report
    text = caplog.text
    assert "cls.weight" in text and "(81, 8)" in text and "(3, 8)" in text
    # the table of what matched
    assert "Names in Model" in text and "head.box.weight" in text and "(12, 8)" in text


def test_align_ambiguity_raises():
    model = _model_sd(**{"a.weight": (2,)})
    model2 = dict(model, **_model_sd(**{"b.a.weight": (2,)}))
    ckpt = {"a.weight": torch.ones(2)}
    out = align_and_update_state_dicts(model, dict(ckpt), c2_conversion=False)
    assert set(out) == {"a.weight"}
    with pytest.raises(ValueError, match="a.weight"):
        align_and_update_state_dicts(model2, dict(ckpt), c2_conversion=False)


def test_align_with_c2_conversion_keeps_original_names_in_table(caplog):
    model = _model_sd(
        **{
            "backbone.bottom_up.stem.conv1.weight": (4, 3, 7, 7),
            "backbone.bottom_up.res2.0.conv1.norm.weight": (4,),
            "backbone.fpn_lateral5.weight": (8, 16, 1, 1),
            "proposal_generator.rpn_head.conv.weight": (8, 8, 3, 3),
            "roi_heads.box_predictor.cls_score.weight": (4, 10),
            "roi_heads.mask_head.predictor.weight": (2, 8, 1, 1),
        }
    )
    ckpt = {
        "conv1_w": np.ones((4, 3, 7, 7), np.float32),
        "res2_0_branch2a_bn_s": np.ones(4, np.float32),
        "fpn_inner_res5_2_sum_w": np.ones((8, 16, 1, 1), np.float32),
        "conv_rpn_fpn2_w": np.ones((8, 8, 3, 3), np.float32),
        "cls_score_w": np.arange(4, dtype=np.float32)[:, None].repeat(10, 1),
        "mask_fcn_logits_w": np.ones((3, 8, 1, 1), np.float32),
    }
    with caplog.at_level(logging.INFO):
        out = align_and_update_state_dicts(model, ckpt, c2_conversion=True)
    assert set(out) == set(model)
    np.testing.assert_array_equal(out["roi_heads.box_predictor.cls_score.weight"][:, 0], [1, 2, 3, 0])
    assert "fpn_inner_res5_2_sum_w" in caplog.text and "backbone.fpn_lateral5.weight" in caplog.text
