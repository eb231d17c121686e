"""Non-maximum suppression: axis-aligned boxes (torchvision; segmented batches in _C) and rotated boxes (_C)."""
from typing import List

import torch
from torchvision.ops import boxes as box_ops
from torchvision.ops import nms  # noqa: F401  (re-exported as detectron2.layers.nms)

from ._checks import BadInputError, BadTypeError, describe
from ._ops import load_C, ops, try_load_C

# torch.jit.script(nms_rotated) resolves torch.ops.detectron2.nms_rotated when it
# compiles, so the op must be registered by then (best effort: no error here).
try_load_C()

# Above this magnitude float32 spacing exceeds ~1/8 px, so class offsets would blur boxes.
_MAX_SAFE_OFFSET_COORD = 2.0**20


def batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """
    NMS run independently per category ``idxs``, for (N, 4) XYXY boxes.

    Works in float32 even for half inputs (their range is too small for the offsets
    torchvision adds per category).
    """
    if not torch.jit.is_scripting():  # the checks use Python that TorchScript cannot compile
        check_batched_nms_inputs(boxes, scores, idxs, 4)
    return box_ops.batched_nms(boxes.float(), scores, idxs, iou_threshold)


def check_batched_nms_inputs(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, box_dim: int) -> None:
    """Raise BadInputError (a ValueError and an AssertionError, as upstream's assert)
    unless boxes is (N, box_dim) and scores and idxs are (N,)."""
    for name, t in (("boxes", boxes), ("scores", scores), ("idxs", idxs)):
        if not isinstance(t, torch.Tensor):
            raise BadTypeError(f"batched_nms: {name} must be a Tensor, got {describe(t)}")
    if boxes.dim() != 2 or boxes.shape[1] != box_dim:
        raise BadInputError(f"batched_nms: boxes must have shape (N, {box_dim}), got {tuple(boxes.shape)}")
    n = boxes.shape[0]
    for name, t in (("scores", scores), ("idxs", idxs)):
        if t.dim() != 1 or t.shape[0] != n:
            raise BadInputError(
                f"batched_nms: {name} must have shape ({n},) like boxes' first dim, got {tuple(t.shape)}"
            )


def nms_segments(
    boxes: torch.Tensor, valid: torch.Tensor, bounds: List[int], iou_threshold: float
) -> torch.Tensor:
    """
    Greedy NMS run independently in every segment of every image, in one call.

    Args:
        boxes (Tensor): (B, K, 4) XYXY boxes (float32 or float64); within each segment
            they must already be in priority order (decreasing score).
        valid (Tensor): (B, K) bool; boxes that are False are neither kept nor suppress others.
        bounds (list[int]): segment boundaries shared by all images, ``[0, ..., K]``
            (at most 32 segments), e.g. the start of each feature level.
        iou_threshold (float): a box is dropped when its IoU with a kept box earlier in
            its segment is greater than this.

    Returns:
        Tensor: (B, K) bool, True for the kept boxes. Per segment this equals
        torchvision's ``nms`` of the valid boxes of that segment.
    """
    return ops().nms_segments(boxes, valid, [int(b) for b in bounds], float(iou_threshold))


def nms_rotated(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """
    Greedy NMS of rotated boxes. Scriptable with torch.jit.script.

    Args:
        boxes (Tensor): (N, 5) boxes as (x_ctr, y_ctr, width, height, angle_degrees),
            the angle counter-clockwise on screen (y pointing down).
        scores (Tensor): (N,) scores, same dtype and device as ``boxes``.
        iou_threshold (float): a box is dropped when its IoU with a kept, higher-scoring
            box is greater than this.

    Returns:
        Tensor: int64 indices of the kept boxes, by decreasing score (ties keep input order).
    """
    if not torch.jit.is_scripting():
        load_C()  # a clear error when _C is missing, instead of a missing-op one
    return torch.ops.detectron2.nms_rotated(boxes, scores, float(iou_threshold))


def batched_nms_rotated(
    boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """
    NMS of rotated boxes run independently per category ``idxs``. Scriptable.

    Boxes of different categories are moved apart (an offset per category larger than
    the extent of all boxes, bounded by their half-diagonals, which covers any rotation)
    so that one NMS call never lets them suppress each other.

    Returns:
        Tensor: int64 indices of the kept boxes, by decreasing score.
    """
    if not torch.jit.is_scripting():  # the checks use Python that TorchScript cannot compile
        check_batched_nms_inputs(boxes, scores, idxs, 5)
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    boxes = boxes.float()  # half precision cannot hold the offsets
    scores = scores.to(boxes.dtype)
    # Dense category ranks keep offsets small however large the category ids are.
    ranks = torch.unique(idxs, return_inverse=True)[1]
    radius = torch.sqrt(boxes[:, 2] ** 2 + boxes[:, 3] ** 2) / 2
    low = torch.min(boxes[:, 0], boxes[:, 1]) - radius
    high = torch.max(boxes[:, 0], boxes[:, 1]) + radius
    lo = low.min()
    span = (high.max() - lo) + 1
    max_coord = float(span) * float(ranks.max() + 1)
    if not (max_coord < 1048576.0):  # _MAX_SAFE_OFFSET_COORD (a literal: TorchScript has no float globals)
        return _batched_nms_rotated_loop(boxes, scores, ranks, iou_threshold)
    shifted = boxes.clone()  # never modify the caller's boxes
    shifted[:, :2] += (ranks.to(boxes.dtype) * span - lo)[:, None]
    return nms_rotated(shifted, scores, iou_threshold)


def _batched_nms_rotated_loop(
    boxes: torch.Tensor, scores: torch.Tensor, ranks: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    # One NMS per category: exact for any coordinate range.
    kept: List[torch.Tensor] = []
    for r in torch.unique(ranks):
        members = torch.nonzero(ranks == r).flatten()
        kept.append(members[nms_rotated(boxes[members], scores[members], iou_threshold)])
    keep = torch.cat(kept)
    order = torch.sort(scores[keep], descending=True, stable=True)[1]
    return keep[order]
