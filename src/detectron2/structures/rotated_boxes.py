"""Rotated boxes (xc, yc, w, h, angle in degrees counter-clockwise) and their IoU."""
import math
from typing import List, Tuple

import torch

from detectron2.layers._errors import IndexAssertionError, TypeAssertionError, ValueAssertionError
from detectron2.layers.rotated_boxes import pairwise_iou_rotated

from .boxes import Boxes


class RotatedBoxes(Boxes):
    """A list of N rotated boxes stored as an (N, 5) float tensor.

    Each row is (x_center, y_center, width, height, angle): the box of size (w, h)
    centred at (xc, yc), rotated counter-clockwise by `angle` degrees on screen (with
    y pointing down, a positive angle turns the box's right edge upwards).
    """

    def __init__(self, tensor: torch.Tensor):
        if not isinstance(tensor, torch.Tensor):
            tensor = torch.as_tensor(tensor, dtype=torch.float32, device=torch.device("cpu"))
        else:
            tensor = tensor.to(torch.float32)
        if tensor.numel() == 0:
            tensor = tensor.reshape((0, 5)).to(dtype=torch.float32)
        if tensor.dim() != 2 or tensor.size(-1) != 5:
            raise ValueAssertionError(f"RotatedBoxes: tensor must have shape (N, 5), got {tensor.size()}")
        self.tensor = tensor

    def clone(self) -> "RotatedBoxes":
        return RotatedBoxes(self.tensor.clone())

    def to(self, device: torch.device) -> "RotatedBoxes":
        return RotatedBoxes(self.tensor.to(device=device))

    def area(self) -> torch.Tensor:
        return self.tensor[:, 2] * self.tensor[:, 3]

    def normalize_angles(self) -> None:
        """Bring every angle into [-180, 180) in place."""
        self.tensor[:, 4] = (self.tensor[:, 4] + 180.0) % 360.0 - 180.0

    def clip(self, box_size: Tuple[int, int], clip_angle_threshold: float = 1.0) -> None:
        """Clip near-horizontal boxes (|angle| <= clip_angle_threshold degrees) to the image.

        Boxes at larger angles are left as they are: clipping them would need a polygon
        and could not be expressed as a rotated box.
        """
        h, w = box_size
        self.normalize_angles()
        idx = torch.where(torch.abs(self.tensor[:, 4]) <= clip_angle_threshold)[0]
        t = self.tensor
        x1 = (t[idx, 0] - t[idx, 2] / 2.0).clamp(min=0, max=w)
        y1 = (t[idx, 1] - t[idx, 3] / 2.0).clamp(min=0, max=h)
        x2 = (t[idx, 0] + t[idx, 2] / 2.0).clamp(min=0, max=w)
        y2 = (t[idx, 1] + t[idx, 3] / 2.0).clamp(min=0, max=h)
        t[idx, 0] = (x1 + x2) / 2.0
        t[idx, 1] = (y1 + y2) / 2.0
        # Never grow a box that was already inside.
        t[idx, 2] = torch.min(t[idx, 2], x2 - x1)
        t[idx, 3] = torch.min(t[idx, 3], y2 - y1)

    def nonempty(self, threshold: float = 0.0) -> torch.Tensor:
        box = self.tensor
        return (box[:, 2] > threshold) & (box[:, 3] > threshold)

    def __getitem__(self, item) -> "RotatedBoxes":
        if isinstance(item, int):
            return RotatedBoxes(self.tensor[item].view(1, -1))
        b = self.tensor[item]
        if b.dim() != 2:
            raise IndexAssertionError(f"Indexing RotatedBoxes with {item} gives a tensor of shape {b.shape}, expected 2-D")
        return RotatedBoxes(b)

    def __len__(self) -> int:
        return self.tensor.shape[0]

    def __repr__(self) -> str:
        return "RotatedBoxes(" + str(self.tensor) + ")"

    def inside_box(self, box_size: Tuple[int, int], boundary_threshold: int = 0) -> torch.Tensor:
        """Bool mask of boxes whose enclosing axis-aligned rectangle lies inside the image."""
        height, width = box_size
        t = self.tensor
        cnt_x, cnt_y = t[..., 0], t[..., 1]
        half_w, half_h = t[..., 2] / 2.0, t[..., 3] / 2.0
        a = t[..., 4]
        c = torch.abs(torch.cos(a * math.pi / 180.0))
        s = torch.abs(torch.sin(a * math.pi / 180.0))
        dx = c * half_w + s * half_h
        dy = c * half_h + s * half_w
        return (
            (cnt_x - dx >= -boundary_threshold)
            & (cnt_y - dy >= -boundary_threshold)
            & (cnt_x + dx < width + boundary_threshold)
            & (cnt_y + dy < height + boundary_threshold)
        )

    def get_centers(self) -> torch.Tensor:
        return self.tensor[:, :2]

    def scale(self, scale_x: float, scale_y: float) -> None:
        """Scale the image plane by (scale_x, scale_y) and update the boxes in place.

        A non-uniform scale turns a rotated rectangle into a parallelogram; the result
        keeps the lengths of the two scaled edge vectors and takes the angle from the
        scaled height edge (as upstream does), which is exact when scale_x == scale_y or
        the angle is a multiple of 90 degrees.
        """
        t = self.tensor
        t[:, 0] *= scale_x
        t[:, 1] *= scale_y
        theta = t[:, 4] * math.pi / 180.0
        c = torch.cos(theta)
        s = torch.sin(theta)
        # The width edge runs along (cos, -sin) on screen and the height edge along (sin, cos).
        t[:, 2] *= torch.sqrt((scale_x * c) ** 2 + (scale_y * s) ** 2)
        t[:, 3] *= torch.sqrt((scale_x * s) ** 2 + (scale_y * c) ** 2)
        t[:, 4] = torch.atan2(scale_x * s, scale_y * c) * 180.0 / math.pi

    @classmethod
    def cat(cls, boxes_list: List["RotatedBoxes"]) -> "RotatedBoxes":
        if not isinstance(boxes_list, (list, tuple)):
            raise TypeAssertionError(f"RotatedBoxes.cat: boxes_list must be a list, got {type(boxes_list)}")
        if len(boxes_list) == 0:
            return cls(torch.empty(0))
        for box in boxes_list:
            if not isinstance(box, RotatedBoxes):
                raise TypeAssertionError(f"RotatedBoxes.cat: every element must be RotatedBoxes, got {type(box)}")
        return cls(torch.cat([b.tensor for b in boxes_list], dim=0))

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    @torch.jit.unused
    def __iter__(self):
        yield from self.tensor


def pairwise_iou(boxes1: RotatedBoxes, boxes2: RotatedBoxes) -> torch.Tensor:
    """IoU of every pair of rotated boxes, shape (N, M), computed by the compiled op."""
    return pairwise_iou_rotated(boxes1.tensor, boxes2.tensor)
