"""Sampling features and labels at real-valued points, PointRend's basic operation.

Point coordinates are normalized to [0, 1] x [0, 1] over a map (or a box), with (0, 0)
the top-left corner of the top-left pixel, as ``grid_sample(align_corners=False)``."""
from typing import Callable, List, Sequence, Tuple

import torch
from torch.nn import functional as F

from detectron2.layers import cat, shapes_to_tensor
from detectron2.structures import BitMasks, Boxes, Instances

__all__ = [
    "point_sample",
    "generate_regular_grid_point_coords",
    "get_uncertain_point_coords_with_randomness",
    "get_uncertain_point_coords_on_grid",
    "point_sample_fine_grained_features",
    "get_point_coords_wrt_image",
    "sample_point_labels",
]


def point_sample(input: torch.Tensor, point_coords: torch.Tensor, **kwargs) -> torch.Tensor:
    """``grid_sample`` with points in [0, 1] instead of [-1, 1].

    Args:
        input: (N, C, H, W) maps.
        point_coords: (N, P, 2) or (N, Hgrid, Wgrid, 2) normalized (x, y) points.
        kwargs: passed to ``F.grid_sample`` (e.g. ``align_corners``, ``mode``).

    Returns:
        (N, C, P) for (N, P, 2) points, else (N, C, Hgrid, Wgrid).
    """
    if input.dim() != 4:
        raise ValueError(f"point_sample: input must be (N, C, H, W), got shape {tuple(input.shape)}")
    if point_coords.dim() not in (3, 4) or point_coords.shape[-1] != 2 or point_coords.shape[0] != input.shape[0]:
        raise ValueError(
            "point_sample: point_coords must be (N, P, 2) or (N, Hg, Wg, 2) with N of input "
            f"({input.shape[0]}), got shape {tuple(point_coords.shape)}"
        )
    flat = point_coords.dim() == 3
    grid = point_coords.unsqueeze(2) if flat else point_coords
    output = F.grid_sample(input, 2.0 * grid - 1.0, **kwargs)
    return output.squeeze(3) if flat else output


def generate_regular_grid_point_coords(R: int, side_size: int, device) -> torch.Tensor:
    """(R, side_size**2, 2) centers of a side_size x side_size grid over [0, 1]^2,
    row-major (x varies fastest), the same for every one of the R boxes."""
    steps = (torch.arange(side_size, device=device, dtype=torch.float32) + 0.5) / side_size
    ys, xs = torch.meshgrid(steps, steps, indexing="ij")
    grid = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1)
    return grid.unsqueeze(0).expand(R, -1, -1)


def get_uncertain_point_coords_with_randomness(
    coarse_logits: torch.Tensor,
    uncertainty_func: Callable[[torch.Tensor], torch.Tensor],
    num_points: int,
    oversample_ratio: float,
    importance_sample_ratio: float,
) -> torch.Tensor:
    """Training points of PointRend: draw ``num_points * oversample_ratio`` uniform
    points, keep the ``importance_sample_ratio * num_points`` most uncertain ones and
    fill up with fresh uniform points.

    Args:
        coarse_logits: (N, C, Hmask, Wmask) coarse predictions.
        uncertainty_func: maps (N, C, P) point logits to (N, 1, P) uncertainties,
            higher meaning more uncertain.
        num_points, oversample_ratio, importance_sample_ratio: see above.

    Returns:
        (N, num_points, 2) normalized point coordinates.
    """
    if oversample_ratio < 1:
        raise ValueError(f"oversample_ratio must be >= 1, got {oversample_ratio}")
    if not 0 <= importance_sample_ratio <= 1:
        raise ValueError(f"importance_sample_ratio must be in [0, 1], got {importance_sample_ratio}")
    num_boxes = coarse_logits.shape[0]
    num_sampled = int(num_points * oversample_ratio)
    device = coarse_logits.device
    point_coords = torch.rand(num_boxes, num_sampled, 2, device=device)
    point_logits = point_sample(coarse_logits, point_coords, align_corners=False)
    uncertainties = uncertainty_func(point_logits)
    num_uncertain = int(importance_sample_ratio * num_points)
    num_random = num_points - num_uncertain
    idx = torch.topk(uncertainties[:, 0, :], k=num_uncertain, dim=1)[1]
    point_coords = torch.gather(point_coords, 1, idx.unsqueeze(2).expand(-1, -1, 2))
    if num_random > 0:
        point_coords = cat([point_coords, torch.rand(num_boxes, num_random, 2, device=device)], dim=1)
    return point_coords


def get_uncertain_point_coords_on_grid(uncertainty_map: torch.Tensor, num_points: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """The ``num_points`` most uncertain cells of a regular grid (inference subdivision).

    Args:
        uncertainty_map: (R, 1, H, W), higher is more uncertain.
        num_points: points to select; at most H * W are returned.

    Returns:
        point_indices (R, P) flat indices into H * W, and point_coords (R, P, 2)
        normalized centers of those cells.
    """
    if uncertainty_map.dim() != 4 or uncertainty_map.shape[1] != 1:
        raise ValueError(f"uncertainty_map must be (R, 1, H, W), got shape {tuple(uncertainty_map.shape)}")
    R, _, H, W = uncertainty_map.shape
    num_points = min(H * W, num_points)
    point_indices = torch.topk(uncertainty_map.view(R, H * W), k=num_points, dim=1)[1]
    xs = (point_indices % W).to(torch.float32) + 0.5
    ys = torch.div(point_indices, W, rounding_mode="floor").to(torch.float32) + 0.5
    point_coords = torch.stack([xs / W, ys / H], dim=2)
    return point_indices, point_coords


def get_point_coords_wrt_image(boxes_coords: torch.Tensor, point_coords: torch.Tensor) -> torch.Tensor:
    """Box-normalized points (R, P, 2) of boxes (R, 4) in XYXY to image coordinates."""
    with torch.no_grad():
        origin = boxes_coords[:, None, 0:2]
        size = boxes_coords[:, None, 2:4] - origin
        return point_coords * size + origin


def point_sample_fine_grained_features(
    features_list: Sequence[torch.Tensor],
    feature_scales: Sequence[float],
    boxes: List[Boxes],
    point_coords: torch.Tensor,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Features of every level at box-relative points.

    Args:
        features_list: (N, C_i, H_i, W_i) maps of the N images.
        feature_scales: 1 / stride of each map.
        boxes: the boxes of each image (R boxes in total).
        point_coords: (R, P, 2) points normalized to their box.

    Returns:
        point_features (R, sum C_i, P) and point_coords_wrt_image (R, P, 2).
    """
    cat_boxes = Boxes.cat(boxes)
    num_boxes = [len(b) for b in boxes]
    coords_wrt_image = get_point_coords_wrt_image(cat_boxes.tensor, point_coords)
    per_image_coords = torch.split(coords_wrt_image, num_boxes)
    point_features = []
    for idx_img, coords in enumerate(per_image_coords):
        per_level = []
        for feature_map, scale in zip(features_list, feature_scales):
            h, w = feature_map.shape[-2:]
            # image coordinates -> [0, 1] of this map
            norm = shapes_to_tensor([w, h]) / scale
            scaled = coords / norm.to(feature_map.device)
            sampled = point_sample(feature_map[idx_img].unsqueeze(0), scaled.unsqueeze(0), align_corners=False)
            per_level.append(sampled.squeeze(0).transpose(1, 0))
        point_features.append(cat(per_level, dim=1))
    return cat(point_features, dim=0), coords_wrt_image


def sample_point_labels(instances: List[Instances], point_coords: torch.Tensor) -> torch.Tensor:
    """Ground-truth mask values at points given in image coordinates.

    Args:
        instances: per image, training instances with BitMasks ``gt_masks``.
        point_coords: (R, P, 2) image coordinates, R the total number of instances.

    Returns:
        (R, P) float labels in [0, 1] (bilinear at mask edges).
    """
    with torch.no_grad():
        labels = []
        splits = torch.split(point_coords, [len(x) for x in instances])
        for coords, inst in zip(splits, instances):
            if len(inst) == 0:
                continue
            if not isinstance(inst.gt_masks, BitMasks):
                raise TypeError(
                    "PointRend needs gt_masks as BitMasks (set INPUT.MASK_FORMAT to 'bitmask'), "
                    f"got {type(inst.gt_masks).__name__}"
                )
            masks = inst.gt_masks.tensor
            h, w = inst.gt_masks.image_size
            scale = torch.tensor([w, h], dtype=torch.float32, device=masks.device)
            sampled = point_sample(masks.to(torch.float32).unsqueeze(1), coords / scale, align_corners=False)
            labels.append(sampled.squeeze(1))
        if not labels:
            return point_coords.new_zeros((0, point_coords.shape[1]))
        return cat(labels)
