"""Axis-aligned boxes: the BoxMode conversions, the Boxes container and pairwise metrics."""
import math
from enum import IntEnum, unique
from typing import Any, List, Tuple, Union

import numpy as np
import torch
from torch import device

from detectron2.layers._errors import IndexAssertionError, TypeAssertionError, ValueAssertionError
from detectron2.layers._checks import BadTypeError, describe

_RawBoxType = Union[List[float], Tuple[float, ...], torch.Tensor, np.ndarray]


@unique
class BoxMode(IntEnum):
    """How the 4 (or 5) numbers of a box are to be read.

    XYXY_ABS: (x0, y0, x1, y1) in absolute floating point coordinates.
    XYWH_ABS: (x0, y0, w, h) in absolute floating point coordinates.
    XYXY_REL / XYWH_REL: as above, relative to the image size (not supported by convert).
    XYWHA_ABS: (xc, yc, w, h, a) in absolute coordinates, `a` counter-clockwise in degrees.
    """

    XYXY_ABS = 0
    XYWH_ABS = 1
    XYXY_REL = 2
    XYWH_REL = 3
    XYWHA_ABS = 4

    @staticmethod
    def convert(box: _RawBoxType, from_mode: "BoxMode", to_mode: "BoxMode") -> _RawBoxType:
        """Convert one box (list/tuple of 4 or 5 numbers) or an Nxk array/tensor of boxes.

        The result has the type of `box`.
        """
        if from_mode == to_mode:
            return box
        if from_mode in (BoxMode.XYXY_REL, BoxMode.XYWH_REL) or to_mode in (
            BoxMode.XYXY_REL,
            BoxMode.XYWH_REL,
        ):
            raise ValueAssertionError(
                f"BoxMode.convert: relative modes are not supported (from_mode={from_mode!r}, "
                f"to_mode={to_mode!r}); the image size is unknown here"
            )
        original_type = type(box)
        single_box = isinstance(box, (list, tuple))
        is_numpy = isinstance(box, np.ndarray)
        if single_box:
            if len(box) not in (4, 5):
                raise ValueAssertionError(
                    "BoxMode.convert takes either a k-tuple/list or an Nxk array/tensor, "
                    f"where k == 4 or 5; got a sequence of length {len(box)}"
                )
            arr = torch.tensor(box)[None, :]
        elif is_numpy:
            arr = torch.from_numpy(np.asarray(box)).clone()
        elif isinstance(box, torch.Tensor):
            arr = box.clone()
        else:
            raise TypeError(f"BoxMode.convert: box must be a list, tuple, numpy array or tensor, got {type(box)}")
        # Axis-aligned boxes may carry a 5th column, which is passed through untouched.
        allowed_k = (5,) if from_mode == BoxMode.XYWHA_ABS else (4, 5)
        if arr.dim() != 2 or arr.shape[-1] not in allowed_k:
            expected = " or ".join(f"(N, {k})" for k in allowed_k)
            raise ValueAssertionError(
                f"BoxMode.convert: box in mode {from_mode.name} must have shape {expected}, got {tuple(arr.shape)}"
            )
        arr = _convert_tensor(arr, from_mode, to_mode)
        if single_box:
            return original_type(arr.flatten().tolist())
        if is_numpy:
            return arr.numpy()
        return arr


def _convert_tensor(arr: torch.Tensor, from_mode: BoxMode, to_mode: BoxMode) -> torch.Tensor:
    # Rotated modes go through XYXY/XYWH; the absolute axis-aligned pairs are direct.
    if from_mode == BoxMode.XYWHA_ABS:
        arr = _xywha_to_xyxy(arr)
        return arr if to_mode == BoxMode.XYXY_ABS else _convert_tensor(arr, BoxMode.XYXY_ABS, to_mode)
    if to_mode == BoxMode.XYWHA_ABS:
        if from_mode == BoxMode.XYXY_ABS:
            arr = _convert_tensor(arr, BoxMode.XYXY_ABS, BoxMode.XYWH_ABS)
        return _xywh_to_xywha(arr)
    if from_mode == BoxMode.XYWH_ABS and to_mode == BoxMode.XYXY_ABS:
        arr[:, 2] += arr[:, 0]
        arr[:, 3] += arr[:, 1]
    else:  # XYXY_ABS -> XYWH_ABS
        arr[:, 2] -= arr[:, 0]
        arr[:, 3] -= arr[:, 1]
    return arr


def _xywha_to_xyxy(arr: torch.Tensor) -> torch.Tensor:
    # The axis-aligned rectangle enclosing the rotated box; computed in double for accuracy.
    dtype = arr.dtype
    arr = arr.double()
    w, h, a = arr[:, 2], arr[:, 3], arr[:, 4]
    c = torch.abs(torch.cos(a * math.pi / 180.0))
    s = torch.abs(torch.sin(a * math.pi / 180.0))
    new_w = c * w + s * h
    new_h = c * h + s * w
    x0 = arr[:, 0] - new_w / 2.0
    y0 = arr[:, 1] - new_h / 2.0
    return torch.stack([x0, y0, x0 + new_w, y0 + new_h], dim=1).to(dtype=dtype)


def _xywh_to_xywha(arr: torch.Tensor) -> torch.Tensor:
    dtype = arr.dtype
    arr = arr.double()
    xc = arr[:, 0] + arr[:, 2] / 2.0
    yc = arr[:, 1] + arr[:, 3] / 2.0
    angles = torch.zeros_like(xc)
    return torch.stack([xc, yc, arr[:, 2], arr[:, 3], angles], dim=1).to(dtype=dtype)


class Boxes:
    """A list of N axis-aligned boxes stored as an (N, 4) float tensor in XYXY_ABS mode.

    Supports indexing, device moves and the common geometric operations; usable from
    TorchScript.
    """

    def __init__(self, tensor: torch.Tensor):
        if not isinstance(tensor, torch.Tensor):
            tensor = torch.as_tensor(tensor, dtype=torch.float32, device=torch.device("cpu"))
        else:
            tensor = tensor.to(torch.float32)
        if tensor.numel() == 0:
            # Keep an empty input well-formed as (0, 4) whatever its shape was.
            tensor = tensor.reshape((-1, 4)).to(dtype=torch.float32)
        if tensor.dim() != 2 or tensor.size(-1) != 4:
            raise ValueAssertionError(f"Boxes: tensor must have shape (N, 4), got {tensor.size()}")
        self.tensor = tensor

    def clone(self) -> "Boxes":
        return Boxes(self.tensor.clone())

    def to(self, device: torch.device) -> "Boxes":
        return Boxes(self.tensor.to(device=device))

    def area(self) -> torch.Tensor:
        """Area of each box, shape (N,)."""
        box = self.tensor
        return (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1])

    def clip(self, box_size: Tuple[int, int]) -> None:
        """Clip the boxes in place to [0, width] x [0, height]; box_size is (height, width)."""
        if not bool(torch.isfinite(self.tensor).all()):
            raise ValueAssertionError("Boxes.clip: box tensor contains infinite or NaN values")
        h, w = box_size
        x1 = self.tensor[:, 0].clamp(min=0, max=w)
        y1 = self.tensor[:, 1].clamp(min=0, max=h)
        x2 = self.tensor[:, 2].clamp(min=0, max=w)
        y2 = self.tensor[:, 3].clamp(min=0, max=h)
        self.tensor = torch.stack((x1, y1, x2, y2), dim=-1)

    def nonempty(self, threshold: float = 0.0) -> torch.Tensor:
        """Bool mask of the boxes whose width and height both exceed `threshold`."""
        box = self.tensor
        widths = box[:, 2] - box[:, 0]
        heights = box[:, 3] - box[:, 1]
        return (widths > threshold) & (heights > threshold)

    def __getitem__(self, item) -> "Boxes":
        """Index with an int (one box, kept 2-D), a slice, a bool mask or a long index tensor."""
        if isinstance(item, int):
            return Boxes(self.tensor[item].view(1, -1))
        b = self.tensor[item]
        if b.dim() != 2:
            raise IndexAssertionError(f"Indexing Boxes with {item} gives a tensor of shape {b.shape}, expected 2-D")
        return Boxes(b)

    def __len__(self) -> int:
        return self.tensor.shape[0]

    def __repr__(self) -> str:
        return "Boxes(" + str(self.tensor) + ")"

    def inside_box(self, box_size: Tuple[int, int], boundary_threshold: int = 0) -> torch.Tensor:
        """Bool mask of boxes lying inside the (height, width) reference box, with a margin."""
        height, width = box_size
        t = self.tensor
        return (
            (t[..., 0] >= -boundary_threshold)
            & (t[..., 1] >= -boundary_threshold)
            & (t[..., 2] < width + boundary_threshold)
            & (t[..., 3] < height + boundary_threshold)
        )

    def get_centers(self) -> torch.Tensor:
        """Box centers as an (N, 2) tensor of (x, y)."""
        return (self.tensor[:, :2] + self.tensor[:, 2:]) / 2

    def scale(self, scale_x: float, scale_y: float) -> None:
        """Scale the box coordinates in place."""
        self.tensor[:, 0::2] *= scale_x
        self.tensor[:, 1::2] *= scale_y

    @classmethod
    def cat(cls, boxes_list: List["Boxes"]) -> "Boxes":
        """Concatenate a list of Boxes into one."""
        if not isinstance(boxes_list, (list, tuple)):
            raise TypeAssertionError(f"Boxes.cat: boxes_list must be a list, got {type(boxes_list)}")
        if len(boxes_list) == 0:
            return cls(torch.empty(0))
        for box in boxes_list:
            if not isinstance(box, Boxes):
                raise TypeAssertionError(f"Boxes.cat: every element must be Boxes, got {type(box)}")
        return cls(torch.cat([b.tensor for b in boxes_list], dim=0))

    @property
    def device(self) -> device:
        return self.tensor.device

    # Iterating yields one (4,) tensor per box.
    @torch.jit.unused
    def __iter__(self):
        yield from self.tensor


def _check_same_device(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    if a.device != b.device:
        raise ValueError(f"{name_a} and {name_b} must be on the same device, got {a.device} and {b.device}")


@torch.jit.unused
def _check_boxes_args(fn: str, boxes1: Any, boxes2: Any) -> None:
    for name, b in (("boxes1", boxes1), ("boxes2", boxes2)):
        if not isinstance(b, Boxes):
            hint = " (wrap a tensor as Boxes(tensor))" if isinstance(b, torch.Tensor) else ""
            raise BadTypeError(f"{fn}: {name} must be a Boxes, got {describe(b)}{hint}")


def _area_of_tensor(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def _intersection_of_tensors(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """(..., N, M) intersection areas of (..., N, 4) and (..., M, 4) XYXY tensors."""
    # In-place steps keep the (..., N, M, 2) temporaries to one allocation each.
    low = torch.max(boxes1[..., :, None, :2], boxes2[..., None, :, :2])
    wh = torch.min(boxes1[..., :, None, 2:], boxes2[..., None, :, 2:]).sub_(low).clamp_(min=0)
    return wh[..., 0] * wh[..., 1]


def _iou_of_tensors(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    # One implementation for pairwise_iou and batched_pairwise_iou: bitwise-equal values.
    inter = _intersection_of_tensors(boxes1, boxes2)
    union = (_area_of_tensor(boxes1)[..., :, None] + _area_of_tensor(boxes2)[..., None, :]).sub_(inter)
    zero = torch.zeros(1, dtype=inter.dtype, device=inter.device)
    return torch.where(inter > 0, inter / union, zero)


def pairwise_intersection(boxes1: Boxes, boxes2: Boxes) -> torch.Tensor:
    """Intersection area of every pair, shape (N, M)."""
    if not torch.jit.is_scripting():  # TorchScript checks the types itself
        _check_boxes_args("pairwise_intersection", boxes1, boxes2)
    _check_same_device(boxes1.tensor, boxes2.tensor, "boxes1", "boxes2")
    return _intersection_of_tensors(boxes1.tensor, boxes2.tensor)


def pairwise_iou(boxes1: Boxes, boxes2: Boxes) -> torch.Tensor:
    """Intersection over union of every pair of boxes (XYXY_ABS), shape (N, M).

    Pairs that do not overlap get 0, including pairs of empty boxes.
    """
    if not torch.jit.is_scripting():  # TorchScript checks the types itself
        _check_boxes_args("pairwise_iou", boxes1, boxes2)
    _check_same_device(boxes1.tensor, boxes2.tensor, "boxes1", "boxes2")
    return _iou_of_tensors(boxes1.tensor, boxes2.tensor)


@torch.jit.unused
def batched_pairwise_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """pairwise_iou of B images at once: (B, N, 4) and (B, M, 4) (or (M, 4), shared by
    all images) XYXY_ABS tensors give (B, N, M), each slice bitwise equal to
    pairwise_iou of that image's boxes. Zero-padded rows (images with fewer boxes) get
    IoU 0 with every box."""
    for name, t in (("boxes1", boxes1), ("boxes2", boxes2)):
        if not isinstance(t, torch.Tensor) or t.shape[-1:] != (4,):
            raise ValueError(f"batched_pairwise_iou: {name} must be a (..., 4) tensor, got {describe(t)}")
    if boxes1.dim() != 3 or boxes2.dim() not in (2, 3):
        raise ValueError(
            f"batched_pairwise_iou: boxes1 must be (B, N, 4) and boxes2 (B, M, 4) or (M, 4), "
            f"got shapes {tuple(boxes1.shape)} and {tuple(boxes2.shape)}"
        )
    if boxes2.dim() == 3 and boxes2.shape[0] != boxes1.shape[0]:
        raise ValueError(f"batched_pairwise_iou: batch sizes differ, {boxes1.shape[0]} and {boxes2.shape[0]}")
    _check_same_device(boxes1, boxes2, "boxes1", "boxes2")
    return _iou_of_tensors(boxes1, boxes2)


def pairwise_ioa(boxes1: Boxes, boxes2: Boxes) -> torch.Tensor:
    """Intersection over the area of boxes2 for every pair, shape (N, M)."""
    if not torch.jit.is_scripting():  # TorchScript checks the types itself
        _check_boxes_args("pairwise_ioa", boxes1, boxes2)
    area2 = boxes2.area()
    inter = pairwise_intersection(boxes1, boxes2)
    zero = torch.zeros(1, dtype=inter.dtype, device=inter.device)
    return torch.where(inter > 0, inter / area2, zero)


def pairwise_point_box_distance(points: torch.Tensor, boxes: Boxes) -> torch.Tensor:
    """Distances (left, top, right, bottom) from each of N points to each of M boxes: (N, M, 4).

    Negative values mean the point lies outside that side of the box.
    """
    if points.dim() != 2 or points.shape[1] != 2:
        raise ValueError(f"pairwise_point_box_distance: points must have shape (N, 2), got {tuple(points.shape)}")
    _check_same_device(points, boxes.tensor, "points", "boxes")
    x, y = points.unsqueeze(dim=2).unbind(dim=1)  # each (N, 1)
    x0, y0, x1, y1 = boxes.tensor.unsqueeze(dim=0).unbind(dim=2)  # each (1, M)
    return torch.stack([x - x0, y - y0, x1 - x, y1 - y], dim=2)


def matched_pairwise_iou(boxes1: Boxes, boxes2: Boxes) -> torch.Tensor:
    """IoU of the i-th box of boxes1 with the i-th box of boxes2, shape (N,)."""
    if len(boxes1) != len(boxes2):
        raise ValueError(
            f"matched_pairwise_iou: boxlists should have the same number of entries, got {len(boxes1)}, {len(boxes2)}"
        )
    area1 = boxes1.area()
    area2 = boxes2.area()
    b1, b2 = boxes1.tensor, boxes2.tensor
    _check_same_device(b1, b2, "boxes1", "boxes2")
    lt = torch.max(b1[:, :2], b2[:, :2])
    rb = torch.min(b1[:, 2:], b2[:, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[:, 0] * wh[:, 1]
    return inter / (area1 + area2 - inter)
