"""Panoptic-DeepLab post-processing: center detection by max-pool NMS, grouping of
thing pixels to their closest predicted center, and merging with semantic stuff."""
from collections import Counter
from typing import Iterable, Optional, Tuple

import torch
import torch.nn.functional as F

__all__ = [
    "find_instance_center",
    "group_pixels",
    "get_instance_segmentation",
    "merge_semantic_and_instance",
    "get_panoptic_segmentation",
]


def find_instance_center(
    center_heatmap: torch.Tensor, threshold: float = 0.1, nms_kernel: int = 3, top_k: Optional[int] = None
) -> torch.Tensor:
    """(K, 2) (y, x) coordinates of the local maxima of a (1, H, W) heatmap above
    ``threshold``; with ``top_k``, only those scoring above the k-th highest value."""
    heat = F.threshold(center_heatmap, threshold, -1)
    pad = (nms_kernel - 1) // 2
    pooled = F.max_pool2d(heat, kernel_size=nms_kernel, stride=1, padding=pad)
    heat = heat.clone()
    heat[heat != pooled] = -1
    heat = heat.squeeze()
    if heat.dim() != 2:
        raise ValueError(f"center_heatmap must be (1, H, W), got shape {tuple(center_heatmap.shape)}")
    if top_k is None:
        return torch.nonzero(heat > 0)
    k = min(top_k, heat.numel())
    kth = torch.topk(torch.flatten(heat), k)[0][-1].clamp(min=0)
    return torch.nonzero(heat > kth)


def group_pixels(center_points: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Instance id (1..K) of every pixel: the center closest to pixel + offset.
    center_points (K, 2) as (y, x), offsets (2, H, W) as (dy, dx). Returns (1, H, W)."""
    height, width = offsets.shape[1:]
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=offsets.dtype, device=offsets.device),
        torch.arange(width, dtype=offsets.dtype, device=offsets.device),
        indexing="ij",
    )
    voted = (torch.stack([ys, xs]) + offsets).flatten(1).T.unsqueeze(0)  # (1, H*W, 2)
    distance = torch.norm(center_points.unsqueeze(1).to(offsets.dtype) - voted, dim=-1)  # (K, H*W)
    # ids start at 1: 0 is kept for stuff
    return torch.argmin(distance, dim=0).reshape(1, height, width) + 1


def get_instance_segmentation(
    sem_seg: torch.Tensor,
    center_heatmap: torch.Tensor,
    offsets: torch.Tensor,
    thing_seg: torch.Tensor,
    thing_ids: Iterable[int],
    threshold: float = 0.1,
    nms_kernel: int = 3,
    top_k: Optional[int] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """(1, H, W) instance ids (0 outside things) and the (1, K, 2) centers."""
    centers = find_instance_center(center_heatmap, threshold=threshold, nms_kernel=nms_kernel, top_k=top_k)
    if centers.size(0) == 0:
        return torch.zeros_like(sem_seg), centers.unsqueeze(0)
    return thing_seg * group_pixels(centers, offsets), centers.unsqueeze(0)


def merge_semantic_and_instance(
    sem_seg: torch.Tensor,
    ins_seg: torch.Tensor,
    semantic_thing_seg: torch.Tensor,
    label_divisor: int,
    thing_ids: Iterable[int],
    stuff_area: int,
    void_label: int,
) -> torch.Tensor:
    """Panoptic ids ``class * label_divisor + instance`` (instance numbered from 1 per
    class; 0 for stuff). A thing segment takes the majority semantic class of its
    pixels; stuff classes fill the rest when they cover at least ``stuff_area``."""
    thing_ids = set(int(t) for t in thing_ids)
    pan_seg = torch.zeros_like(sem_seg) + void_label
    is_thing = (ins_seg > 0) & (semantic_thing_seg > 0)
    per_class = Counter()
    for ins_id in torch.unique(ins_seg):
        if ins_id == 0:
            continue
        mask = (ins_seg == ins_id) & is_thing
        if not mask.any():
            continue
        class_id, _ = torch.mode(sem_seg[mask].view(-1))
        per_class[class_id.item()] += 1
        pan_seg[mask] = class_id * label_divisor + per_class[class_id.item()]
    for class_id in torch.unique(sem_seg):
        if class_id.item() in thing_ids:
            continue
        mask = (sem_seg == class_id) & (ins_seg == 0)
        if mask.sum().item() >= stuff_area:
            pan_seg[mask] = class_id * label_divisor
    return pan_seg


def get_panoptic_segmentation(
    sem_seg: torch.Tensor,
    center_heatmap: torch.Tensor,
    offsets: torch.Tensor,
    thing_ids: Iterable[int],
    label_divisor: int,
    stuff_area: int,
    void_label: int,
    threshold: float = 0.1,
    nms_kernel: int = 7,
    top_k: int = 200,
    foreground_mask: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """
    Args:
        sem_seg: (1, H, W) semantic class ids.
        center_heatmap: (1, H, W) center scores.
        offsets: (2, H, W) (dy, dx) offsets to the centers.
        thing_ids: contiguous ids of the thing classes.
        label_divisor, stuff_area, void_label: see merge_semantic_and_instance.
        threshold, nms_kernel, top_k: see find_instance_center.
        foreground_mask: (1, H, W) thing mask to use instead of sem_seg's thing classes.

    Returns:
        (1, H, W) panoptic ids and (1, K, 2) instance centers.
    """
    if sem_seg.dim() != 3 or sem_seg.size(0) != 1:
        raise ValueError(f"Semantic prediction with un-supported shape: {tuple(sem_seg.shape)}, expected (1, H, W)")
    if center_heatmap.dim() != 3:
        raise ValueError(f"Center prediction with un-supported dimension: {center_heatmap.dim()}, expected 3")
    if offsets.dim() != 3:
        raise ValueError(f"Offset prediction with un-supported dimension: {offsets.dim()}, expected 3")
    thing_ids = list(thing_ids)
    if foreground_mask is not None:
        if foreground_mask.dim() != 3 or foreground_mask.size(0) != 1:
            raise ValueError(f"Foreground prediction with un-supported shape: {tuple(foreground_mask.shape)}")
        thing_seg = foreground_mask
    else:
        thing_seg = torch.zeros_like(sem_seg)
        for thing_class in thing_ids:
            thing_seg[sem_seg == thing_class] = 1
    instance, center = get_instance_segmentation(
        sem_seg, center_heatmap, offsets, thing_seg, thing_ids, threshold=threshold, nms_kernel=nms_kernel, top_k=top_k
    )
    panoptic = merge_semantic_and_instance(sem_seg, instance, thing_seg, label_divisor, thing_ids, stuff_area, void_label)
    return panoptic, center
