"""IoU of rotated boxes, computed by the compiled ``box_iou_rotated`` op."""
import torch

from ._ops import ops


def pairwise_iou_rotated(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """
    IoU between every pair of rotated boxes.

    Args:
        boxes1 (Tensor): (N, 5) boxes as (x_ctr, y_ctr, width, height, angle_degrees),
            the angle counter-clockwise on screen (image coordinates, y pointing down):
            a local point (u, v) of the box lies at
            (x_ctr + u cos(a) + v sin(a), y_ctr - u sin(a) + v cos(a)), as in
            ROIAlignRotated and RotatedBoxes.
        boxes2 (Tensor): (M, 5) boxes in the same format, dtype and device.

    Returns:
        Tensor: (N, M) IoU values in [0, 1], in the dtype of the inputs; IoU(a, b) and
        IoU(b, a) are bit-identical.
    """
    return ops().box_iou_rotated(boxes1, boxes2)
