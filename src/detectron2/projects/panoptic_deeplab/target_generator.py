"""Training targets of Panoptic-DeepLab from a panoptic label map."""
from typing import Dict, Iterable, List

import numpy as np
import torch

__all__ = ["PanopticDeepLabTargetGenerator"]


class PanopticDeepLabTargetGenerator:
    """Semantic labels, instance-center heatmaps (a Gaussian of ``sigma`` at each thing
    instance's mass center), center offsets and the loss weights of each."""

    def __init__(
        self,
        ignore_label: int,
        thing_ids: Iterable[int],
        sigma: int = 8,
        ignore_stuff_in_offset: bool = False,
        small_instance_area: int = 0,
        small_instance_weight: float = 1,
        ignore_crowd_in_semantic: bool = False,
    ):
        """
        Args:
            ignore_label: semantic label of unlabeled pixels.
            thing_ids: contiguous ids of the thing classes.
            sigma: standard deviation (pixels) of the center Gaussians.
            ignore_stuff_in_offset: give stuff pixels weight 0 in the offset loss.
            small_instance_area, small_instance_weight: instances smaller than the area
                get this semantic-loss weight.
            ignore_crowd_in_semantic: leave crowd regions at ignore_label.
        """
        self.ignore_label = ignore_label
        self.thing_ids = set(thing_ids)
        self.ignore_stuff_in_offset = ignore_stuff_in_offset
        self.small_instance_area = small_instance_area
        self.small_instance_weight = small_instance_weight
        self.ignore_crowd_in_semantic = ignore_crowd_in_semantic
        self.sigma = sigma
        # One Gaussian of side 6 * sigma + 3 with its peak in the middle, pasted at each center.
        size = 6 * sigma + 3
        x = np.arange(0, size, 1, float)
        y = x[:, np.newaxis]
        mid = 3 * sigma + 1
        self.g = np.exp(-((x - mid) ** 2 + (y - mid) ** 2) / (2 * sigma**2))

    def __call__(self, panoptic: np.ndarray, segments_info: List[Dict]) -> Dict:
        """
        Args:
            panoptic: (H, W) segment ids (as panopticapi's rgb2id gives them).
            segments_info: dicts with id, category_id (contiguous) and iscrowd.

        Returns:
            dict with sem_seg (H, W) long, center (H, W), center_points [[y, x], ...],
            offset (2, H, W) as (dy, dx) towards the center, sem_seg_weights (H, W),
            center_weights (1, H, W) and offset_weights (1, H, W).
        """
        if panoptic.ndim != 2:
            raise ValueError(f"panoptic must be an (H, W) id map, got shape {panoptic.shape}")
        height, width = panoptic.shape
        semantic = np.full_like(panoptic, self.ignore_label, dtype=np.uint8)
        center = np.zeros((height, width), dtype=np.float32)
        center_pts = []
        offset = np.zeros((2, height, width), dtype=np.float32)
        y_coord, x_coord = np.meshgrid(
            np.arange(height, dtype=np.float32), np.arange(width, dtype=np.float32), indexing="ij"
        )
        semantic_weights = np.ones_like(panoptic, dtype=np.uint8)
        # 1 where the instance branch learns: not unlabeled, not crowd (and, optionally,
        # not stuff for the offsets)
        center_weights = np.zeros_like(panoptic, dtype=np.uint8)
        offset_weights = np.zeros_like(panoptic, dtype=np.uint8)
        for seg in segments_info:
            cat_id = seg["category_id"]
            region = panoptic == seg["id"]
            if not (self.ignore_crowd_in_semantic and seg["iscrowd"]):
                semantic[region] = cat_id
            if not seg["iscrowd"]:
                center_weights[region] = 1
                if not self.ignore_stuff_in_offset or cat_id in self.thing_ids:
                    offset_weights[region] = 1
            if cat_id not in self.thing_ids:
                continue
            ys, xs = np.where(region)
            if len(ys) == 0:  # cropped away
                continue
            if len(ys) < self.small_instance_area:
                semantic_weights[region] = self.small_instance_weight
            center_y, center_x = np.mean(ys), np.mean(xs)
            center_pts.append([center_y, center_x])
            self._paste_gaussian(center, int(round(center_y)), int(round(center_x)))
            offset[0][ys, xs] = center_y - y_coord[ys, xs]
            offset[1][ys, xs] = center_x - x_coord[ys, xs]
        return {
            "sem_seg": torch.as_tensor(semantic.astype("long")),
            "center": torch.as_tensor(center),
            "center_points": center_pts,
            "offset": torch.as_tensor(offset),
            "sem_seg_weights": torch.as_tensor(semantic_weights.astype(np.float32)),
            "center_weights": torch.as_tensor(center_weights[None].astype(np.float32)),
            "offset_weights": torch.as_tensor(offset_weights[None].astype(np.float32)),
        }

    def _paste_gaussian(self, heatmap: np.ndarray, y: int, x: int) -> None:
        """heatmap = max(heatmap, Gaussian peaked at (y, x)), clipped to the image."""
        height, width = heatmap.shape
        r = 3 * self.sigma + 1
        x0, x1 = x - r, x + r + 1  # window of the Gaussian in image coordinates
        y0, y1 = y - r, y + r + 1
        cx0, cx1 = max(0, x0), min(x1, width)
        cy0, cy1 = max(0, y0), min(y1, height)
        if cx0 >= cx1 or cy0 >= cy1:
            return
        patch = self.g[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
        heatmap[cy0:cy1, cx0:cx1] = np.maximum(heatmap[cy0:cy1, cx0:cx1], patch)
