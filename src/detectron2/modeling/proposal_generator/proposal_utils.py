"""Turning dense per-anchor predictions into per-image proposals, shared by RPN and RRPN."""
import math
from typing import Callable, List, Tuple, Type, Union

import torch

from detectron2.layers import batched_nms, batched_nms_rotated, cat, move_device_like
from detectron2.layers.nms import nms_segments
from detectron2.structures import Boxes, Instances, RotatedBoxes

__all__ = ["find_top_rpn_proposals", "find_top_rrpn_proposals", "add_ground_truth_to_proposals"]

# Objectness logit given to ground-truth boxes added as proposals: P(object) = 1 - 1e-10.
_GT_LOGIT = math.log((1.0 - 1e-10) / (1 - (1.0 - 1e-10)))


def _is_tracing() -> bool:
    return not torch.jit.is_scripting() and torch.jit.is_tracing()


def _check_dense_predictions(proposals, logits, image_sizes, box_dim: int) -> None:
    if not isinstance(proposals, (list, tuple)) or not isinstance(logits, (list, tuple)):
        raise TypeError("proposals and pred_objectness_logits must be lists of tensors, one per level")
    if len(proposals) == 0 or len(proposals) != len(logits):
        raise ValueError(
            f"proposals ({len(proposals)} levels) and pred_objectness_logits ({len(logits)} levels) "
            "must be non-empty and have one entry per feature level"
        )
    for i, (p, s) in enumerate(zip(proposals, logits)):
        if p.dim() != 3 or p.shape[2] != box_dim:
            raise ValueError(f"proposals[{i}] must have shape (N, Hi*Wi*A, {box_dim}), got {tuple(p.shape)}")
        if s.dim() != 2 or tuple(s.shape) != tuple(p.shape[:2]):
            raise ValueError(
                f"pred_objectness_logits[{i}] must have shape {tuple(p.shape[:2])} to match "
                f"proposals[{i}], got {tuple(s.shape)}"
            )
        if p.shape[0] != len(image_sizes):
            raise ValueError(f"proposals[{i}] holds {p.shape[0]} images but image_sizes has {len(image_sizes)}")
        if p.device != s.device:
            raise ValueError(f"proposals[{i}] is on {p.device} but pred_objectness_logits[{i}] on {s.device}")


def _topk_per_level(
    proposals: List[torch.Tensor], logits: List[torch.Tensor], pre_nms_topk: int
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``pre_nms_topk`` best-scoring proposals of every level and image, concatenated
    over levels: boxes (N, K, B), scores (N, K) and the level of each column (K,)."""
    device = proposals[0].device
    topk_boxes, topk_scores, level_ids = [], [], []
    for level_id, (proposals_i, logits_i) in enumerate(zip(proposals, logits)):
        hwa = logits_i.shape[1]
        # While tracing, the size may be a tensor: clamp keeps the trace general.
        k = torch.clamp(hwa, max=pre_nms_topk) if isinstance(hwa, torch.Tensor) else min(hwa, pre_nms_topk)
        scores_i, idx = logits_i.topk(k, dim=1)
        topk_scores.append(scores_i)
        # gather rather than 2-D advanced indexing: same values, a simpler and faster kernel.
        topk_boxes.append(proposals_i.gather(1, idx.unsqueeze(-1).expand(-1, -1, proposals_i.shape[2])))
        level_ids.append(
            move_device_like(torch.full((k,), level_id, dtype=torch.int64, device=device), proposals[0])
        )
    return cat(topk_boxes, dim=1), cat(topk_scores, dim=1), cat(level_ids, dim=0)


def _select_one_image(
    boxes: Boxes,
    scores: torch.Tensor,
    levels: torch.Tensor,
    image_size: Tuple[int, int],
    nms_fn: Callable,
    nms_thresh: float,
    post_nms_topk: int,
    min_box_size: float,
    training: bool,
) -> Instances:
    """Drop non-finite, clip, drop small boxes, NMS within each level, keep the best."""
    valid = torch.isfinite(boxes.tensor).all(dim=1) & torch.isfinite(scores)
    if not bool(valid.all()):
        if training:
            raise FloatingPointError("Predicted boxes or scores contain Inf/NaN. Training has diverged.")
        boxes, scores, levels = boxes[valid], scores[valid], levels[valid]
    boxes.clip(image_size)
    keep = boxes.nonempty(threshold=min_box_size)
    if _is_tracing() or keep.sum().item() != len(boxes):
        boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
    # Boxes are float32; half-precision logits (e.g. a .half() head) must match them in NMS.
    keep = nms_fn(boxes.tensor, scores.float(), levels, nms_thresh)
    keep = keep[:post_nms_topk]  # NMS returns indices by decreasing score
    result = Instances(image_size)
    result.proposal_boxes = boxes[keep]
    result.objectness_logits = scores[keep]
    return result


def _select_all_images(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    level_sizes: List[int],
    image_sizes: List[Tuple[int, int]],
    nms_thresh: float,
    post_nms_topk: int,
    min_box_size: float,
    training: bool,
) -> List[Instances]:
    """_select_one_image for all images and levels at once, for axis-aligned boxes (N, K, 4).

    The same steps with the same arithmetic, but nothing is removed before the NMS:
    non-finite and small boxes are masked out of one segmented NMS (one launch for all
    images and levels), so the host waits for the device once (twice in training).
    """
    finite = torch.isfinite(boxes).all(dim=2) & torch.isfinite(scores)
    if training and not bool(finite.all()):
        raise FloatingPointError("Predicted boxes or scores contain Inf/NaN. Training has diverged.")
    # (N, 1, 4) upper bounds [w, h, w, h]: clamping to them equals Boxes.clip per image.
    limits = torch.as_tensor([[w, h, w, h] for h, w in image_sizes], dtype=boxes.dtype)
    limits = limits.to(boxes.device, non_blocking=True).unsqueeze(1)
    boxes = torch.clamp(boxes, min=torch.zeros_like(limits), max=limits)
    widths = boxes[..., 2] - boxes[..., 0]
    heights = boxes[..., 3] - boxes[..., 1]
    valid = finite & (widths > min_box_size) & (heights > min_box_size)
    bounds = [0]
    for size in level_sizes:
        bounds.append(bounds[-1] + size)
    # Boxes are float32 for the NMS, as batched_nms does for half inputs.
    keep = nms_segments(boxes.float(), valid, bounds, nms_thresh)
    # Survivors first, by decreasing score (stable: ties keep level, then rank, order).
    ranked = scores.float().masked_fill(~keep, float("-inf"))
    order = ranked.sort(dim=1, descending=True, stable=True)[1][:, :post_nms_topk]
    counts = keep.sum(dim=1).clamp(max=post_nms_topk).tolist()
    top_boxes = boxes.gather(1, order.unsqueeze(-1).expand(-1, -1, boxes.shape[2]))
    top_scores = scores.gather(1, order)
    results = []
    for n, (image_size, count) in enumerate(zip(image_sizes, counts)):
        result = Instances(image_size)
        result.proposal_boxes = Boxes(top_boxes[n, :count])
        result.objectness_logits = top_scores[n, :count]
        results.append(result)
    return results


def _find_top_proposals(
    box_type: Type[Boxes],
    nms_fn: Callable,
    proposals: List[torch.Tensor],
    pred_objectness_logits: List[torch.Tensor],
    image_sizes: List[Tuple[int, int]],
    nms_thresh: float,
    pre_nms_topk: int,
    post_nms_topk: int,
    min_box_size: float,
    training: bool,
) -> List[Instances]:
    _check_dense_predictions(proposals, pred_objectness_logits, image_sizes, 5 if box_type is RotatedBoxes else 4)
    boxes, scores, levels = _topk_per_level(proposals, pred_objectness_logits, pre_nms_topk)
    if box_type is Boxes and not _is_tracing() and not torch.jit.is_scripting():
        level_sizes = [min(int(s.shape[1]), pre_nms_topk) for s in pred_objectness_logits]
        return _select_all_images(
            boxes, scores, level_sizes, image_sizes, nms_thresh, post_nms_topk, min_box_size, training
        )
    return [
        _select_one_image(
            box_type(boxes[n]), scores[n], levels, image_size, nms_fn,
            nms_thresh, post_nms_topk, min_box_size, training,
        )
        for n, image_size in enumerate(image_sizes)
    ]


def find_top_rpn_proposals(
    proposals: List[torch.Tensor],
    pred_objectness_logits: List[torch.Tensor],
    image_sizes: List[Tuple[int, int]],
    nms_thresh: float,
    pre_nms_topk: int,
    post_nms_topk: int,
    min_box_size: float,
    training: bool,
) -> List[Instances]:
    """Pick the proposals of each image: the ``pre_nms_topk`` best of every feature
    level, clipped to the image, boxes no larger than ``min_box_size`` removed, NMS
    run per level (in one batched call), and the ``post_nms_topk`` best kept overall.

    Args:
        proposals: per level, (N, Hi*Wi*A, 4) decoded XYXY boxes.
        pred_objectness_logits: per level, (N, Hi*Wi*A) logits.
        image_sizes: the (h, w) of each of the N images.
        nms_thresh: IoU threshold of the NMS.
        pre_nms_topk, post_nms_topk: the numbers kept per level before the NMS and per
            image after it.
        min_box_size: boxes with a side <= this (after clipping) are dropped.
        training: in training, non-finite boxes or scores raise FloatingPointError;
            at inference they are dropped.

    Returns:
        list[Instances]: per image, ``proposal_boxes`` (Boxes) and ``objectness_logits``
        sorted by decreasing logit.
    """
    if torch.jit.is_scripting():  # TorchScript cannot pass classes/functions as values
        return _find_top_rpn_proposals_scripting(
            proposals, pred_objectness_logits, image_sizes, nms_thresh, pre_nms_topk, post_nms_topk,
            min_box_size, training,
        )
    else:
        return _find_top_proposals(
            Boxes, batched_nms, proposals, pred_objectness_logits, image_sizes,
            nms_thresh, pre_nms_topk, post_nms_topk, min_box_size, training,
        )


def _find_top_rpn_proposals_scripting(
    proposals: List[torch.Tensor],
    pred_objectness_logits: List[torch.Tensor],
    image_sizes: List[Tuple[int, int]],
    nms_thresh: float,
    pre_nms_topk: int,
    post_nms_topk: int,
    min_box_size: float,
    training: bool,
) -> List[Instances]:
    """find_top_rpn_proposals in the subset of Python that TorchScript compiles: the
    same steps and ops as _topk_per_level and _select_one_image, for Boxes only."""
    topk_boxes: List[torch.Tensor] = []
    topk_scores: List[torch.Tensor] = []
    level_ids: List[torch.Tensor] = []
    for level_id, (proposals_i, logits_i) in enumerate(zip(proposals, pred_objectness_logits)):
        k = min(logits_i.shape[1], pre_nms_topk)
        scores_i, idx = logits_i.topk(k, dim=1)
        topk_scores.append(scores_i)
        topk_boxes.append(proposals_i.gather(1, idx.unsqueeze(-1).expand(-1, -1, proposals_i.shape[2])))
        level_ids.append(torch.full((k,), level_id, dtype=torch.int64, device=proposals_i.device))
    all_boxes, all_scores, all_levels = torch.cat(topk_boxes, 1), torch.cat(topk_scores, 1), torch.cat(level_ids)
    results: List[Instances] = []
    for n, image_size in enumerate(image_sizes):
        boxes, scores, levels = Boxes(all_boxes[n]), all_scores[n], all_levels
        valid = torch.isfinite(boxes.tensor).all(dim=1) & torch.isfinite(scores)
        if not bool(valid.all()):
            if training:
                raise FloatingPointError("Predicted boxes or scores contain Inf/NaN. Training has diverged.")
            boxes, scores, levels = boxes[valid], scores[valid], levels[valid]
        boxes.clip(image_size)
        keep = boxes.nonempty(threshold=min_box_size)
        if keep.sum().item() != len(boxes):
            boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
        keep = batched_nms(boxes.tensor, scores.float(), levels, nms_thresh)
        keep = keep[:post_nms_topk]
        result = Instances(image_size)
        result.proposal_boxes = boxes[keep]
        result.objectness_logits = scores[keep]
        results.append(result)
    return results


def find_top_rrpn_proposals(
    proposals: List[torch.Tensor],
    pred_objectness_logits: List[torch.Tensor],
    image_sizes: List[Tuple[int, int]],
    nms_thresh: float,
    pre_nms_topk: int,
    post_nms_topk: int,
    min_box_size: float,
    training: bool,
) -> List[Instances]:
    """find_top_rpn_proposals for rotated boxes: ``proposals`` are (N, Hi*Wi*A, 5)
    (x_ctr, y_ctr, w, h, angle) and ``proposal_boxes`` are RotatedBoxes; the NMS is the
    rotated one and only near-horizontal boxes are clipped."""
    return _find_top_proposals(
        RotatedBoxes, batched_nms_rotated, proposals, pred_objectness_logits, image_sizes,
        nms_thresh, pre_nms_topk, post_nms_topk, min_box_size, training,
    )


def add_ground_truth_to_proposals(
    gt: Union[List[Instances], List[Boxes]], proposals: List[Instances]
) -> List[Instances]:
    """Append each image's ground-truth boxes to its proposals, with a near-certain
    objectness logit, so that the ROI heads always see some positives.

    Args:
        gt: per image, Instances with ``gt_boxes`` (their other fields are carried
            along) or just Boxes.
        proposals: per image, Instances with ``proposal_boxes`` and ``objectness_logits``.
    """
    if gt is None:
        raise ValueError("add_ground_truth_to_proposals: gt must not be None")
    if len(proposals) != len(gt):
        raise ValueError(
            f"add_ground_truth_to_proposals: {len(gt)} ground-truth entries for {len(proposals)} images"
        )
    return [add_ground_truth_to_proposals_single_image(g, p) for g, p in zip(gt, proposals)]


def add_ground_truth_to_proposals_single_image(gt: Union[Instances, Boxes], proposals: Instances) -> Instances:
    """add_ground_truth_to_proposals for one image."""
    if isinstance(gt, Boxes):
        gt = Instances(proposals.image_size, gt_boxes=gt)
    gt_boxes = gt.gt_boxes
    logits = proposals.objectness_logits
    gt_proposals = Instances(proposals.image_size, **gt.get_fields())
    gt_proposals.proposal_boxes = gt_boxes
    gt_proposals.objectness_logits = torch.full(
        (len(gt_boxes),), _GT_LOGIT, dtype=logits.dtype, device=logits.device
    )
    for key in proposals.get_fields().keys():
        if not gt_proposals.has(key):
            raise ValueError(f"add_ground_truth_to_proposals: proposals have field '{key}' that gt lacks")
    # Instances.cat keeps the fields of the first element: gt-only fields are dropped.
    return Instances.cat([proposals, gt_proposals])
