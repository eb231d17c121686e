"""Renaming Caffe2 / Detectron1 blob names to this package's parameter names, and matching
a loaded state dict onto a model's by the longest dotted key suffix."""
import logging
import re
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
from tabulate import tabulate

__all__ = ["convert_basic_c2_names", "convert_c2_detectron_names", "align_and_update_state_dicts"]

# Applied in order to every name after "_" became ".". Stem and residual blocks first, then
# norm statistics: a name like "res2.0.branch2a.bn.s" needs both.
_BASIC_RULES: Sequence[Tuple[str, str]] = (
    (r"\.w$", ".weight"),
    (r"\.b$", ".bias"),
    (r"bn\.s$", "norm.weight"),
    (r"bn\.bias$", "norm.bias"),
    (r"bn\.rm$", "norm.running_mean"),
    (r"bn\.running\.mean$", "norm.running_mean"),
    (r"bn\.riv$", "norm.running_var"),
    (r"bn\.running\.var$", "norm.running_var"),
    (r"bn\.gamma$", "norm.weight"),
    (r"bn\.beta$", "norm.bias"),
    (r"gn\.s$", "norm.weight"),
    (r"gn\.bias$", "norm.bias"),
    # the stem's norm is called res_conv1_bn in Detectron1
    (r"^res\.conv1\.norm\.", "conv1.norm."),
    (r"^conv1\.", "stem.conv1."),
    # deformable conv offsets predicted for the 3x3 conv of a bottleneck
    (r"\.branch2b\.conv2\.offset\.", ".conv2_offset."),
    (r"\.branch2b\.offset\.", ".conv2_offset."),
    (r"\.branch1\.", ".shortcut."),
    (r"\.branch2a\.", ".conv1."),
    (r"\.branch2b\.", ".conv2."),
    (r"\.branch2c\.", ".conv3."),
)

# Detection-specific renames, applied after the basic ones (plain substring replacements
# unless the pattern starts with "^"). Longer, more specific patterns come first.
_DETECTRON_RULES: Sequence[Tuple[str, str]] = (
    # RPN: FPN models share one head over all levels; its weights are stored under fpn2
    ("conv.rpn.fpn2", "proposal_generator.rpn_head.conv"),
    ("rpn.conv.fpn2", "proposal_generator.rpn_head.conv"),
    ("conv.rpn", "proposal_generator.rpn_head.conv"),
    ("rpn.bbox.pred.fpn2", "proposal_generator.rpn_head.anchor_deltas"),
    ("rpn.cls.logits.fpn2", "proposal_generator.rpn_head.objectness_logits"),
    ("rpn.bbox.pred", "proposal_generator.rpn_head.anchor_deltas"),
    ("rpn.cls.logits", "proposal_generator.rpn_head.objectness_logits"),
    # Fast R-CNN box head and predictor
    (r"^bbox\.pred", "bbox_pred"),
    (r"^cls\.score", "cls_score"),
    (r"^fc6\.", "box_head.fc1."),
    (r"^fc7\.", "box_head.fc2."),
    (r"^head\.conv", "box_head.conv"),
    # Mask head: the logits conv first, it shares the "mask.fcn" prefix with the convs
    ("mask.fcn.logits", "mask_head.predictor"),
    (".[mask].fcn", "mask_head.mask_fcn"),
    (r"^mask\.fcn", "mask_head.mask_fcn"),
    ("conv5.mask", "mask_head.deconv"),
    # Keypoint head (its convs are plainly "conv_fcnN")
    ("conv.fcn", "roi_heads.keypoint_head.conv_fcn"),
    ("kps.score.lowres", "roi_heads.keypoint_head.score_lowres"),
    ("kps.score.", "roi_heads.keypoint_head.score."),
)


def _apply(rules: Sequence[Tuple[str, str]], key: str, regex: bool) -> str:
    for pattern, repl in rules:
        if regex or pattern.startswith("^"):
            key = re.sub(pattern, repl, key)
        else:
            key = key.replace(pattern, repl)
    return key


def convert_basic_c2_names(original_keys: List[str]) -> List[str]:
    """Rename Caffe2 blob names of a ResNet (stem, blocks, norms) to this package's names.

    ``res2_0_branch2a_w`` becomes ``res2.0.conv1.weight``; the backbone prefix is left to
    :func:`align_and_update_state_dicts`, which matches by suffix.
    """
    return [_apply(_BASIC_RULES, k.replace("_", "."), regex=True) for k in original_keys]


def _fpn_name(name: str) -> str:
    """``fpn.inner.res5.2.sum.weight`` -> ``fpn_lateral5.weight``; ``fpn.res5.2.sum.weight``
    -> ``fpn_output5.weight`` (a GroupNorm in between keeps its ``.norm``)."""
    parts = name.split(".")
    norm = ".norm" if "norm" in parts else ""
    if name.startswith("fpn.inner.res"):
        return "fpn_lateral{}{}.{}".format(int(parts[2][3:]), norm, parts[-1])
    if name.startswith("fpn.res"):
        return "fpn_output{}{}.{}".format(int(parts[1][3:]), norm, parts[-1])
    return name


def convert_c2_detectron_names(weights: Dict[str, object]) -> Tuple[Dict[str, object], Dict[str, str]]:
    """Rename a Detectron1 state dict. Returns the renamed dict and a map new -> old name.

    Class-specific predictors are also re-laid-out: Detectron1 puts background first in
    ``cls_score`` (we put it last) and has background outputs in ``bbox_pred`` and the
    mask logits that the class-agnostic-background heads here do not have.
    """
    logger = logging.getLogger(__name__)
    logger.info("Renaming Caffe2 weights ......")
    original_keys = sorted(weights.keys())
    renamed = convert_basic_c2_names(original_keys)
    renamed = [_fpn_name(_apply(_DETECTRON_RULES, k, regex=False)) for k in renamed]

    new_weights: Dict[str, object] = {}
    new_to_old: Dict[str, str] = {}
    for old, new in zip(original_keys, renamed):
        if new in new_to_old:
            raise ValueError(f"Both '{new_to_old[new]}' and '{old}' are renamed to '{new}'.")
        new_to_old[new] = old
        value = weights[old]
        if new.startswith("bbox_pred.") or new.startswith("mask_head.predictor."):
            # drop the background class's outputs (4 box deltas, or 1 mask channel)
            value = value[4:] if new.startswith("bbox_pred.") else value[1:]
            logger.info(f"Remove prediction weight for background class in {new}.")
        elif new.startswith("cls_score."):
            logger.info(f"Move classification weights for background class in {new} from index 0 to the end.")
            value = _roll_background_last(value)
        new_weights[new] = value
    return new_weights, new_to_old


def _roll_background_last(value):
    if isinstance(value, torch.Tensor):
        return torch.cat([value[1:], value[:1]])
    return np.concatenate([value[1:], value[:1]])


def _suffix_match(model_key: str, ckpt_key: str) -> bool:
    # suffixes count only on whole dotted components: "conv1.weight" must not match "xconv1.weight"
    return model_key == ckpt_key or model_key.endswith("." + ckpt_key)


def align_and_update_state_dicts(
    model_state_dict: Dict[str, torch.Tensor], ckpt_state_dict: Dict[str, object], c2_conversion: bool = True
) -> Dict[str, object]:
    """Match checkpoint keys to model keys and return a state dict keyed like the model.

    Each model key takes the checkpoint key that is its longest dotted suffix (e.g. the
    model's ``backbone.bottom_up.res2.0.conv1.weight`` takes ``res2.0.conv1.weight``).
    Matches whose shapes differ are logged and skipped. Checkpoint keys that match nothing
    (or mismatched in shape) are kept under their own name, so the caller reports them.
    """
    logger = logging.getLogger(__name__)
    if c2_conversion:
        ckpt_state_dict, original_keys = convert_c2_detectron_names(ckpt_state_dict)
    else:
        original_keys = {k: k for k in ckpt_state_dict}
    model_keys = sorted(model_state_dict.keys())
    ckpt_keys = sorted(ckpt_state_dict.keys())

    result: Dict[str, object] = {}
    matched: Dict[str, str] = {}  # checkpoint key -> model key
    for key_model in model_keys:
        best = max((k for k in ckpt_keys if _suffix_match(key_model, k)), key=len, default=None)
        if best is None:
            continue
        value = ckpt_state_dict[best]
        shape_model = tuple(model_state_dict[key_model].shape)
        shape_ckpt = tuple(value.shape)
        if shape_model != shape_ckpt:
            logger.warning(
                f"Shape of {best} in checkpoint is {shape_ckpt}, while shape of {key_model} "
                f"in model is {shape_model}. {best} will not be loaded. Please double check "
                "and see if this is desired."
            )
            continue
        if best in matched:
            raise ValueError(
                f"Ambiguity: checkpoint key '{original_keys[best]}' matches both '{matched[best]}' "
                f"and '{key_model}' in the model."
            )
        matched[best] = key_model
        result[key_model] = value

    if matched:
        logger.info("Following weights matched with model:\n" + _matched_table(matched, original_keys, result))
    for k in ckpt_keys:
        if k not in matched and k not in result:
            result[k] = ckpt_state_dict[k]
    return result


def _matched_table(matched: Dict[str, str], original_keys: Dict[str, str], result: Dict[str, object]) -> str:
    rows = []
    for key_ckpt, key_model in sorted(matched.items(), key=lambda kv: kv[1]):
        shape = tuple(result[key_model].shape)
        rows.append((key_model, original_keys[key_ckpt], str(shape)))
    return tabulate(rows, headers=["Names in Model", "Names in Checkpoint", "Shapes"], tablefmt="pipe")
