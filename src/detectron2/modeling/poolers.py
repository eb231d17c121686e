"""Multi-level RoI pooling: each box is pooled from the FPN level that fits its size."""
import math
from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import nn
from torchvision.ops import RoIPool

from detectron2.layers import ROIAlign, ROIAlignRotated, cat, nonzero_tuple, shapes_to_tensor
from detectron2.structures import Boxes
from detectron2.utils.tracing import assert_fx_safe, is_fx_tracing

__all__ = ["ROIPooler", "assign_boxes_to_levels", "convert_boxes_to_pooler_format"]


def assign_boxes_to_levels(
    box_lists: List[Boxes],
    min_level: int,
    max_level: int,
    canonical_box_size: int,
    canonical_level: int,
) -> torch.Tensor:
    """The FPN paper's Eq. 1: a box of size sqrt(area) goes to level
    floor(canonical_level + log2(size / canonical_box_size)), clamped to
    [min_level, max_level].

    Returns:
        (sum of box counts,) int64 level index relative to ``min_level``.
    """
    if not torch.jit.is_scripting() and len(box_lists) > 1:
        # The area of the concatenated boxes: the same values, in ops per batch.
        areas = type(box_lists[0]).cat(box_lists).area()
    else:
        areas = cat([boxes.area() for boxes in box_lists])
    box_sizes = torch.sqrt(areas)
    # The epsilon keeps boxes exactly at a boundary size (e.g. 224) on the upper level.
    levels = torch.floor(canonical_level + torch.log2(box_sizes / canonical_box_size + 1e-8))
    levels = torch.clamp(levels, min=min_level, max=max_level)
    return levels.to(torch.int64) - min_level


def _convert_boxes_to_pooler_format(boxes: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
    sizes = sizes.to(device=boxes.device)
    indices = torch.repeat_interleave(torch.arange(len(sizes), dtype=boxes.dtype, device=boxes.device), sizes)
    return cat([indices[:, None], boxes], dim=1)


def convert_boxes_to_pooler_format(box_lists: List[Boxes]) -> torch.Tensor:
    """Concatenate per-image boxes into the (K, 5 or 6) rois that ROIAlign takes:
    column 0 is the image index in the batch, the rest the box."""
    boxes = torch.cat([x.tensor for x in box_lists], dim=0)
    if _is_tracing():
        sizes = shapes_to_tensor([x.__len__() for x in box_lists])
        return _convert_boxes_to_pooler_format(boxes, sizes)
    # Image indices made on the device from host-known sizes: no blocking host-to-device copy.
    indices = [torch.full((len(x), 1), i, dtype=boxes.dtype, device=boxes.device) for i, x in enumerate(box_lists)]
    return cat([cat(indices, dim=0), boxes], dim=1)


def _is_tracing() -> bool:
    return is_fx_tracing() or (not torch.jit.is_scripting() and torch.jit.is_tracing())


def _create_zeros(
    batch_target: Optional[torch.Tensor], channels: int, height: int, width: int, like_tensor: torch.Tensor
) -> torch.Tensor:
    batches = batch_target.shape[0] if batch_target is not None else 0
    return torch.zeros((batches, channels, height, width), dtype=like_tensor.dtype, device=like_tensor.device)


def _make_level_poolers(pooler_type: str, output_size, scales, sampling_ratio) -> nn.ModuleList:
    if pooler_type == "ROIAlign":
        # Legacy: boxes not shifted by half a pixel (Detectron's behaviour).
        make = lambda s: ROIAlign(output_size, spatial_scale=s, sampling_ratio=sampling_ratio, aligned=False)
    elif pooler_type == "ROIAlignV2":
        make = lambda s: ROIAlign(output_size, spatial_scale=s, sampling_ratio=sampling_ratio, aligned=True)
    elif pooler_type == "ROIPool":
        make = lambda s: RoIPool(output_size, spatial_scale=s)
    elif pooler_type == "ROIAlignRotated":
        make = lambda s: ROIAlignRotated(output_size, spatial_scale=s, sampling_ratio=sampling_ratio)
    else:
        raise ValueError(
            f"Unknown pooler type: {pooler_type}; expected ROIAlign, ROIAlignV2, ROIPool or ROIAlignRotated"
        )
    return nn.ModuleList(make(scale) for scale in scales)


class ROIPooler(nn.Module):
    """RoI pooling over several feature maps (e.g. FPN p2-p5), choosing one map per
    box by its size (see :func:`assign_boxes_to_levels`)."""

    def __init__(
        self,
        output_size: Union[int, Tuple[int, int]],
        scales: Sequence[float],
        sampling_ratio: int,
        pooler_type: str,
        canonical_box_size: int = 224,
        canonical_level: int = 4,
    ):
        """
        Args:
            output_size: (h, w) of each pooled region, or one int for both.
            scales: 1 / stride of each input feature map, fine to coarse; the strides
                must be consecutive powers of 2.
            sampling_ratio: samples per bin for the ROIAlign variants (0: adaptive).
            pooler_type: "ROIAlign", "ROIAlignV2", "ROIPool" or "ROIAlignRotated".
            canonical_box_size, canonical_level: a box of this size (sqrt of area) is
                pooled from this level (224 and 4, as ImageNet models see C4).
        """
        super().__init__()
        if isinstance(output_size, int):
            output_size = (output_size, output_size)
        if len(output_size) != 2 or not all(isinstance(s, int) for s in output_size):
            raise ValueError(f"ROIPooler: output_size must be an int or two ints, got {output_size}")
        self.output_size = tuple(output_size)
        if len(scales) == 0:
            raise ValueError("ROIPooler: scales must not be empty")
        self.level_poolers = _make_level_poolers(pooler_type, self.output_size, scales, sampling_ratio)

        min_level = -math.log2(scales[0])
        max_level = -math.log2(scales[-1])
        if not (math.isclose(min_level, round(min_level)) and math.isclose(max_level, round(max_level))):
            raise ValueError(f"ROIPooler: scales {list(scales)} are not 1 / (a power of 2): Featuremap stride is not power of 2!")
        self.min_level = int(round(min_level))
        self.max_level = int(round(max_level))
        if len(scales) != self.max_level - self.min_level + 1:
            raise ValueError(f"ROIPooler: scales {list(scales)} must be consecutive powers of 1/2")
        if not 0 <= self.min_level <= self.max_level:
            raise ValueError(f"ROIPooler: scales {list(scales)} must be <= 1 and decreasing")
        if canonical_box_size <= 0:
            raise ValueError(f"ROIPooler: canonical_box_size must be positive, got {canonical_box_size}")
        self.canonical_level = canonical_level
        self.canonical_box_size = canonical_box_size

    def forward(self, x: List[torch.Tensor], box_lists: List[Boxes]) -> torch.Tensor:
        """
        Args:
            x: feature maps (N, C, H_l, W_l), one per scale given at construction.
            box_lists: N Boxes (or RotatedBoxes for ROIAlignRotated), one per image.

        Returns:
            (total boxes, C, output_h, output_w) pooled features, in box order.
        """
        num_levels = len(self.level_poolers)
        if not is_fx_tracing():
            if not (isinstance(x, list) and isinstance(box_lists, list)):
                raise TypeError("ROIPooler: x and box_lists must both be lists")
        assert_fx_safe(
            len(x) == num_levels,
            f"ROIPooler: got {len(x)} feature maps (x) for {num_levels} scales",
        )
        assert_fx_safe(
            len(box_lists) == x[0].size(0),
            f"ROIPooler: box_lists has {len(box_lists)} images, the features have batch size {x[0].size(0)}",
        )
        if len(box_lists) == 0:
            return _create_zeros(None, x[0].shape[1], *self.output_size, x[0])

        pooler_fmt_boxes = convert_boxes_to_pooler_format(box_lists)
        if num_levels == 1:
            return self.level_poolers[0](x[0], pooler_fmt_boxes)

        levels = assign_boxes_to_levels(
            box_lists, self.min_level, self.max_level, self.canonical_box_size, self.canonical_level
        )
        output = _create_zeros(pooler_fmt_boxes, x[0].shape[1], *self.output_size, x[0])
        if not torch.jit.is_scripting():  # TorchScript takes the per-level loop below
            if not _is_tracing():
                # Boxes grouped by level with one stable sort and one host copy of the counts,
                # instead of a nonzero (and a host sync) per level; same indices, same order.
                order = torch.argsort(levels, stable=True)
                counts = torch.bincount(levels, minlength=num_levels).tolist()
                for inds, pooler, features in zip(order.split(counts), self.level_poolers, x):
                    output.index_put_((inds,), pooler(features, pooler_fmt_boxes[inds]))
                return output
        for level, pooler in enumerate(self.level_poolers):
            inds = nonzero_tuple(levels == level)[0]
            # index_put_ rather than masked assignment: traceable, and no dtype surprises.
            output.index_put_((inds,), pooler(x[level], pooler_fmt_boxes[inds]))
        return output
