"""Box <-> regression-target transforms used by R-CNN, RetinaNet and FCOS heads."""
import math
from typing import List, Tuple, Union

import torch
from torch.nn import functional as F

from detectron2.layers import cat, ciou_loss, diou_loss, nonzero_tuple
from detectron2.structures import Boxes

__all__ = ["Box2BoxTransform", "Box2BoxTransformRotated", "Box2BoxTransformLinear"]

# Caps dw / dh before exp() so that no predicted box grows past 1000/16 times its
# reference: prevents overflow from wild early-training predictions.
_DEFAULT_SCALE_CLAMP = math.log(1000.0 / 16)


def _check_boxes_arg(name: str, t, dim: int) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != 2 or t.shape[1] != dim:
        raise ValueError(f"{name} must have shape (N, {dim}), got {tuple(t.shape)}")


class Box2BoxTransform:
    """The R-CNN box parameterization: deltas (dx, dy, dw, dh) move the centre by
    dx * width, dy * height and scale width and height by exp(dw), exp(dh). Each
    delta is multiplied by its weight when encoding."""

    def __init__(
        self, weights: Tuple[float, float, float, float], scale_clamp: float = _DEFAULT_SCALE_CLAMP
    ):
        """
        Args:
            weights: (wx, wy, ww, wh) scaling of the deltas (e.g. (10, 10, 5, 5)).
            scale_clamp: upper bound of dw and dh when decoding.
        """
        if len(weights) != 4:
            raise ValueError(f"Box2BoxTransform: weights must have 4 values, got {weights}")
        self.weights = weights
        self.scale_clamp = scale_clamp

    def get_deltas(self, src_boxes: torch.Tensor, target_boxes: torch.Tensor) -> torch.Tensor:
        """Deltas that turn each ``src_boxes[i]`` into ``target_boxes[i]`` (both (N, 4)
        XYXY); ``apply_deltas(deltas, src_boxes)`` inverts this."""
        if not torch.jit.is_scripting():
            _check_boxes_arg("src_boxes", src_boxes, 4)
            _check_boxes_arg("target_boxes", target_boxes, 4)
        src_w = src_boxes[:, 2] - src_boxes[:, 0]
        src_h = src_boxes[:, 3] - src_boxes[:, 1]
        src_x = src_boxes[:, 0] + 0.5 * src_w
        src_y = src_boxes[:, 1] + 0.5 * src_h

        tgt_w = target_boxes[:, 2] - target_boxes[:, 0]
        tgt_h = target_boxes[:, 3] - target_boxes[:, 1]
        tgt_x = target_boxes[:, 0] + 0.5 * tgt_w
        tgt_y = target_boxes[:, 1] + 0.5 * tgt_h

        wx, wy, ww, wh = self.weights
        deltas = torch.stack(
            (
                wx * (tgt_x - src_x) / src_w,
                wy * (tgt_y - src_y) / src_h,
                ww * torch.log(tgt_w / src_w),
                wh * torch.log(tgt_h / src_h),
            ),
            dim=1,
        )
        assert (src_w > 0).all().item(), "Input boxes to Box2BoxTransform are not valid!"
        return deltas

    def apply_deltas(self, deltas: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """
        Args:
            deltas: (N, k*4) deltas, k >= 1 (e.g. one set per class).
            boxes: (N, 4) XYXY reference boxes.

        Returns:
            (N, k*4) decoded XYXY boxes, in float32 (or the dtype of float64 deltas).
        """
        if deltas.dim() != 2 or deltas.shape[1] % 4 != 0:
            raise ValueError(f"deltas must have shape (N, k*4), got {deltas.shape}")
        deltas = deltas.float() if deltas.dtype != torch.float64 else deltas
        boxes = boxes.to(deltas.dtype)

        widths = boxes[:, 2] - boxes[:, 0]
        heights = boxes[:, 3] - boxes[:, 1]
        ctr_x = boxes[:, 0] + 0.5 * widths
        ctr_y = boxes[:, 1] + 0.5 * heights

        wx, wy, ww, wh = self.weights
        dx = deltas[:, 0::4] / wx
        dy = deltas[:, 1::4] / wy
        dw = torch.clamp(deltas[:, 2::4] / ww, max=self.scale_clamp)
        dh = torch.clamp(deltas[:, 3::4] / wh, max=self.scale_clamp)

        pred_ctr_x = dx * widths[:, None] + ctr_x[:, None]
        pred_ctr_y = dy * heights[:, None] + ctr_y[:, None]
        half_w = 0.5 * torch.exp(dw) * widths[:, None]
        half_h = 0.5 * torch.exp(dh) * heights[:, None]
        pred = torch.stack(
            (pred_ctr_x - half_w, pred_ctr_y - half_h, pred_ctr_x + half_w, pred_ctr_y + half_h), dim=-1
        )
        return pred.reshape(deltas.shape)


class Box2BoxTransformRotated:
    """Box2BoxTransform for rotated boxes (x_ctr, y_ctr, w, h, angle in degrees): the
    angle delta is the wrapped difference in radians times its weight."""

    def __init__(
        self,
        weights: Tuple[float, float, float, float, float],
        scale_clamp: float = _DEFAULT_SCALE_CLAMP,
    ):
        if len(weights) != 5:
            raise ValueError(f"Box2BoxTransformRotated: weights must have 5 values, got {weights}")
        self.weights = weights
        self.scale_clamp = scale_clamp

    def get_deltas(self, src_boxes: torch.Tensor, target_boxes: torch.Tensor) -> torch.Tensor:
        """Deltas (dx, dy, dw, dh, da) from (N, 5) source to (N, 5) target boxes."""
        if not torch.jit.is_scripting():
            _check_boxes_arg("src_boxes", src_boxes, 5)
            _check_boxes_arg("target_boxes", target_boxes, 5)
        src_x, src_y, src_w, src_h, src_a = torch.unbind(src_boxes, dim=1)
        tgt_x, tgt_y, tgt_w, tgt_h, tgt_a = torch.unbind(target_boxes, dim=1)

        wx, wy, ww, wh, wa = self.weights
        # The offsets are measured in the image frame, not the box frame, as upstream.
        dx = wx * (tgt_x - src_x) / src_w
        dy = wy * (tgt_y - src_y) / src_h
        dw = ww * torch.log(tgt_w / src_w)
        dh = wh * torch.log(tgt_h / src_h)
        da = (tgt_a - src_a + 180.0) % 360.0 - 180.0  # wrapped into [-180, 180)
        da = da * (wa * math.pi / 180.0)

        deltas = torch.stack((dx, dy, dw, dh, da), dim=1)
        assert (src_w > 0).all().item(), "Input boxes to Box2BoxTransformRotated are not valid!"
        return deltas

    def apply_deltas(self, deltas: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """
        Args:
            deltas: (N, k*5) deltas.
            boxes: (N, 5) reference boxes.

        Returns:
            (N, k*5) boxes, angles wrapped into [-180, 180).
        """
        if deltas.dim() != 2 or deltas.shape[1] % 5 != 0:
            raise ValueError(f"deltas must have shape (N, k*5), got {deltas.shape}")
        if boxes.dim() != 2 or boxes.shape[1] != 5:
            raise ValueError(f"boxes must have shape (N, 5), got {boxes.shape}")
        boxes = boxes.to(deltas.dtype).unsqueeze(2)
        ctr_x, ctr_y, widths, heights, angles = boxes.unbind(1)

        wx, wy, ww, wh, wa = self.weights
        dx = deltas[:, 0::5] / wx
        dy = deltas[:, 1::5] / wy
        dw = torch.clamp(deltas[:, 2::5] / ww, max=self.scale_clamp)
        dh = torch.clamp(deltas[:, 3::5] / wh, max=self.scale_clamp)
        da = deltas[:, 4::5] / wa

        pred = torch.zeros_like(deltas)
        pred[:, 0::5] = dx * widths + ctr_x
        pred[:, 1::5] = dy * heights + ctr_y
        pred[:, 2::5] = torch.exp(dw) * widths
        pred[:, 3::5] = torch.exp(dh) * heights
        angle = da * (180.0 / math.pi) + angles
        pred[:, 4::5] = (angle + 180.0) % 360.0 - 180.0
        return pred


class Box2BoxTransformLinear:
    """The FCOS parameterization: distances (left, top, right, bottom) from the source
    box centre to the target's sides, optionally divided by the source box size."""

    def __init__(self, normalize_by_size: bool = True):
        self.normalize_by_size = normalize_by_size

    def _strides(self, boxes: torch.Tensor) -> torch.Tensor:
        w = boxes[:, 2] - boxes[:, 0]
        h = boxes[:, 3] - boxes[:, 1]
        return torch.stack([w, h, w, h], dim=1)

    def get_deltas(self, src_boxes: torch.Tensor, target_boxes: torch.Tensor) -> torch.Tensor:
        """(N, 4) distances from the centres of ``src_boxes`` to the sides of
        ``target_boxes``."""
        if not torch.jit.is_scripting():
            _check_boxes_arg("src_boxes", src_boxes, 4)
            _check_boxes_arg("target_boxes", target_boxes, 4)
        ctr_x = 0.5 * (src_boxes[:, 0] + src_boxes[:, 2])
        ctr_y = 0.5 * (src_boxes[:, 1] + src_boxes[:, 3])
        deltas = torch.stack(
            (
                ctr_x - target_boxes[:, 0],
                ctr_y - target_boxes[:, 1],
                target_boxes[:, 2] - ctr_x,
                target_boxes[:, 3] - ctr_y,
            ),
            dim=1,
        )
        if self.normalize_by_size:
            deltas = deltas / self._strides(src_boxes)
        return deltas

    def apply_deltas(self, deltas: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Boxes from (N, k*4) distances (negative distances are clamped to 0)."""
        if deltas.dim() != 2 or deltas.shape[1] % 4 != 0:
            raise ValueError(f"deltas must have shape (N, k*4), got {deltas.shape}")
        deltas = F.relu(deltas)
        boxes = boxes.to(deltas.dtype)
        ctr_x = 0.5 * (boxes[:, 0] + boxes[:, 2])
        ctr_y = 0.5 * (boxes[:, 1] + boxes[:, 3])
        if self.normalize_by_size:
            deltas = deltas * self._strides(boxes).repeat(1, deltas.shape[1] // 4)
        pred = torch.zeros_like(deltas)
        pred[:, 0::4] = ctr_x[:, None] - deltas[:, 0::4]
        pred[:, 1::4] = ctr_y[:, None] - deltas[:, 1::4]
        pred[:, 2::4] = ctr_x[:, None] + deltas[:, 2::4]
        pred[:, 3::4] = ctr_y[:, None] + deltas[:, 3::4]
        return pred


def _smooth_l1_loss(input: torch.Tensor, target: torch.Tensor, beta: float, reduction: str = "none"):
    """Huber-like loss: 0.5 x^2 / beta for |x| < beta, |x| - 0.5 beta beyond; L1 when
    beta is 0 (fvcore's definition)."""
    diff = torch.abs(input - target)
    if beta < 1e-5:
        loss = diff
    else:
        loss = torch.where(diff < beta, 0.5 * diff * diff / beta, diff - 0.5 * beta)
    if reduction == "mean":
        return loss.mean() if loss.numel() > 0 else 0.0 * loss.sum()
    if reduction == "sum":
        return loss.sum()
    return loss


def _giou_loss(boxes1: torch.Tensor, boxes2: torch.Tensor, reduction: str = "none", eps: float = 1e-7):
    """1 - generalized IoU of matched XYXY boxes (Rezatofighi et al., 2019)."""
    x1, y1, x2, y2 = boxes1.unbind(dim=-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(dim=-1)
    if not (x2 >= x1).all() or not (y2 >= y1).all():
        raise ValueError("giou loss: predicted boxes must have x1 <= x2 and y1 <= y2")
    inter_w = (torch.min(x2, x2g) - torch.max(x1, x1g)).clamp(min=0)
    inter_h = (torch.min(y2, y2g) - torch.max(y1, y1g)).clamp(min=0)
    inter = inter_w * inter_h
    union = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - inter
    iou = inter / (union + eps)
    hull = (torch.max(x2, x2g) - torch.min(x1, x1g)) * (torch.max(y2, y2g) - torch.min(y1, y1g))
    loss = 1 - (iou - (hull - union) / (hull + eps))
    if reduction == "mean":
        return loss.mean() if loss.numel() > 0 else 0.0 * loss.sum()
    if reduction == "sum":
        return loss.sum()
    return loss


def _deltas_of_all_images(
    box2box_transform: Box2BoxTransform, anchors: torch.Tensor, gt_boxes: List[torch.Tensor]
) -> torch.Tensor:
    """(N, R, B) deltas of each image's gt against the shared anchors: the same values as
    one get_deltas per image, in one call (its validity check syncs with the device once)."""
    if len(gt_boxes) == 0:
        return anchors.new_zeros((0,) + tuple(anchors.shape))
    num_images, (num_anchors, box_dim) = len(gt_boxes), anchors.shape
    tiled = anchors.unsqueeze(0).expand(num_images, -1, -1).reshape(-1, box_dim)
    deltas = box2box_transform.get_deltas(tiled, torch.stack(gt_boxes).reshape(-1, box_dim))
    return deltas.view(num_images, num_anchors, box_dim)


def _dense_box_regression_loss(
    anchors: List[Union[Boxes, torch.Tensor]],
    box2box_transform: Box2BoxTransform,
    pred_anchor_deltas: List[torch.Tensor],
    gt_boxes: List[torch.Tensor],
    fg_mask: torch.Tensor,
    box_reg_loss_type: str = "smooth_l1",
    smooth_l1_beta: float = 0.0,
) -> torch.Tensor:
    """Summed box regression loss of dense detectors (RPN, RetinaNet, FCOS).

    Args:
        anchors: per feature level, (R_l, 4) anchors.
        box2box_transform: the delta parameterization.
        pred_anchor_deltas: per level, (N, R_l, 4) predicted deltas.
        gt_boxes: per image, (R, 4) ground-truth box matched to every anchor.
        fg_mask: (N, R) bool, anchors that take part in the loss.
        box_reg_loss_type: "smooth_l1", "giou", "diou" or "ciou".
        smooth_l1_beta: beta of the smooth L1 loss (0: L1).
    """
    if isinstance(anchors[0], Boxes):
        anchors = type(anchors[0]).cat(anchors).tensor  # (R, 4)
    else:
        anchors = cat(anchors)
    if isinstance(fg_mask, torch.Tensor) and fg_mask.dtype == torch.bool:
        # The same elements as indexing with the mask, with one nonzero for both operands.
        fg_mask = nonzero_tuple(fg_mask)
    if box_reg_loss_type == "smooth_l1":
        gt_deltas = _deltas_of_all_images(box2box_transform, anchors, gt_boxes)  # (N, R, 4)
        return _smooth_l1_loss(
            cat(pred_anchor_deltas, dim=1)[fg_mask], gt_deltas[fg_mask], beta=smooth_l1_beta, reduction="sum"
        )
    losses = {"giou": _giou_loss, "diou": diou_loss, "ciou": ciou_loss}
    if box_reg_loss_type not in losses:
        raise ValueError(f"Invalid dense box regression loss type '{box_reg_loss_type}'")
    pred_boxes = torch.stack([box2box_transform.apply_deltas(k, anchors) for k in cat(pred_anchor_deltas, dim=1)])
    return losses[box_reg_loss_type](pred_boxes[fg_mask], torch.stack(gt_boxes)[fg_mask], reduction="sum")
