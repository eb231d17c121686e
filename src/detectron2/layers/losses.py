"""Distance-IoU and Complete-IoU box regression losses (Zheng et al., AAAI 2020)."""
import math
from typing import Tuple

import torch

_Terms = Tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _check_boxes(boxes1: torch.Tensor, boxes2: torch.Tensor) -> None:
    for name, b in (("boxes1", boxes1), ("boxes2", boxes2)):
        if b.shape[-1:] != (4,):
            raise ValueError(f"argument '{name}' must have shape (..., 4) in XYXY format, got {tuple(b.shape)}")
    x1, y1, x2, y2 = boxes1.unbind(dim=-1)
    if not bool((x2 >= x1).all()):
        raise ValueError("argument 'boxes1' has a box with x1 > x2 (expected XYXY boxes)")
    if not bool((y2 >= y1).all()):
        raise ValueError("argument 'boxes1' has a box with y1 > y2 (expected XYXY boxes)")


def _iou_and_distance(boxes1: torch.Tensor, boxes2: torch.Tensor, eps: float) -> _Terms:
    """IoU, squared centre distance and squared diagonal of the enclosing box."""
    x1, y1, x2, y2 = boxes1.unbind(dim=-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(dim=-1)
    iw = (torch.min(x2, x2g) - torch.max(x1, x1g)).clamp(min=0)
    ih = (torch.min(y2, y2g) - torch.max(y1, y1g)).clamp(min=0)
    inter = iw * ih
    union = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - inter + eps
    iou = inter / union
    diag = (torch.max(x2, x2g) - torch.min(x1, x1g)) ** 2 + (torch.max(y2, y2g) - torch.min(y1, y1g)) ** 2 + eps
    dist = ((x1 + x2 - x1g - x2g) / 2) ** 2 + ((y1 + y2 - y1g - y2g) / 2) ** 2
    return iou, dist, diag


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        # An empty batch gives 0 (connected to the graph) instead of NaN.
        return loss.mean() if loss.numel() > 0 else 0.0 * loss.sum()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"argument 'reduction' must be 'none', 'mean' or 'sum', got {reduction!r}")


def diou_loss(
    boxes1: torch.Tensor, boxes2: torch.Tensor, reduction: str = "none", eps: float = 1e-7
) -> torch.Tensor:
    """
    Distance-IoU loss: 1 - IoU + d^2 / c^2, with d the distance between the box centres
    and c the diagonal of the smallest box enclosing both.

    Args:
        boxes1, boxes2 (Tensor): predicted and target boxes, (..., 4) in XYXY format.
        reduction: 'none' | 'mean' | 'sum'.
        eps (float): keeps the divisions finite.
    """
    _check_boxes(boxes1, boxes2)
    iou, dist, diag = _iou_and_distance(boxes1, boxes2, eps)
    return _reduce(1 - iou + dist / diag, reduction)


def ciou_loss(
    boxes1: torch.Tensor, boxes2: torch.Tensor, reduction: str = "none", eps: float = 1e-7
) -> torch.Tensor:
    """
    Complete-IoU loss: the DIoU loss plus alpha * v, where v measures the difference of
    aspect ratios and alpha = v / (1 - IoU + v) (treated as a constant for gradients).

    Args:
        boxes1, boxes2 (Tensor): predicted and target boxes, (..., 4) in XYXY format.
        reduction: 'none' | 'mean' | 'sum'.
        eps (float): keeps the divisions finite.
    """
    _check_boxes(boxes1, boxes2)
    iou, dist, diag = _iou_and_distance(boxes1, boxes2, eps)
    x1, y1, x2, y2 = boxes1.unbind(dim=-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(dim=-1)
    v = (4 / math.pi**2) * (torch.atan((x2g - x1g) / (y2g - y1g)) - torch.atan((x2 - x1) / (y2 - y1))) ** 2
    with torch.no_grad():
        alpha = v / (1 - iou + v + eps)
    return _reduce(1 - iou + dist / diag + alpha * v, reduction)
