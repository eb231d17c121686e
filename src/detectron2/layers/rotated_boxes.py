"""IoU of rotated boxes, computed by the compiled ``box_iou_rotated`` op."""
import torch

from ._ops import ops


def pairwise_iou_rotated(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """
    IoU between every pair of rotated boxes.

    Args:
        boxes1 (Tensor): (N, 5) boxes as (x_ctr, y_ctr, width, height, angle_degrees),
            the angle counter-clockwise.
        boxes2 (Tensor): (M, 5) boxes in the same format, dtype and device.

    Returns:
        Tensor: (N, M) IoU values in [0, 1], in the dtype of the inputs.
    """
    return ops().box_iou_rotated(boxes1, boxes2)
