"""PointRend for semantic segmentation: a coarse sem-seg head refined point-wise."""
from typing import Dict, Optional

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from detectron2.layers import ShapeSpec, cat
from detectron2.modeling import SEM_SEG_HEADS_REGISTRY

from .._errors import ProjectConfigError
from .point_features import get_uncertain_point_coords_on_grid, get_uncertain_point_coords_with_randomness, point_sample
from .point_head import build_point_head

__all__ = ["PointRendSemSegHead", "calculate_uncertainty"]


def calculate_uncertainty(sem_seg_logits: torch.Tensor) -> torch.Tensor:
    """Uncertainty of class logits (N, C, ...): the gap between the two best classes,
    negated so that ambiguous points score highest. Returns (N, 1, ...)."""
    top2 = torch.topk(sem_seg_logits, k=2, dim=1)[0]
    return (top2[:, 1] - top2[:, 0]).unsqueeze(1)


@SEM_SEG_HEADS_REGISTRY.register()
class PointRendSemSegHead(nn.Module):
    """A coarse semantic head (POINT_HEAD.COARSE_SEM_SEG_HEAD_NAME) plus a point head:
    training adds a point cross-entropy on uncertain points, inference upsamples the
    coarse logits 2x per step and re-predicts the most uncertain points."""

    def __init__(self, cfg, input_shape: Dict[str, ShapeSpec]):
        super().__init__()
        self.ignore_value = cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE
        coarse_name = cfg.MODEL.POINT_HEAD.COARSE_SEM_SEG_HEAD_NAME
        self.coarse_sem_seg_head = SEM_SEG_HEADS_REGISTRY.get(coarse_name)(cfg, input_shape)
        self._init_point_head(cfg, input_shape)

    def _init_point_head(self, cfg, input_shape: Dict[str, ShapeSpec]) -> None:
        if cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES != cfg.MODEL.POINT_HEAD.NUM_CLASSES:
            raise ProjectConfigError(
                "PointRendSemSegHead: MODEL.POINT_HEAD.NUM_CLASSES must equal MODEL.SEM_SEG_HEAD.NUM_CLASSES, "
                f"got {cfg.MODEL.POINT_HEAD.NUM_CLASSES} and {cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES}"
            )
        point = cfg.MODEL.POINT_HEAD
        self.in_features = point.IN_FEATURES
        missing = [f for f in self.in_features if f not in input_shape]
        if missing:
            raise ProjectConfigError(f"PointRendSemSegHead: POINT_HEAD.IN_FEATURES has {missing}, available: {sorted(input_shape)}")
        self.train_num_points = point.TRAIN_NUM_POINTS
        self.oversample_ratio = point.OVERSAMPLE_RATIO
        self.importance_sample_ratio = point.IMPORTANCE_SAMPLE_RATIO
        self.subdivision_steps = point.SUBDIVISION_STEPS
        self.subdivision_num_points = point.SUBDIVISION_NUM_POINTS
        in_channels = int(np.sum([input_shape[f].channels for f in self.in_features]))
        self.point_head = build_point_head(cfg, ShapeSpec(channels=in_channels, width=1, height=1))

    def _fine_features(self, features: Dict[str, torch.Tensor], point_coords: torch.Tensor) -> torch.Tensor:
        return cat([point_sample(features[f], point_coords, align_corners=False) for f in self.in_features], dim=1)

    def forward(self, features: Dict[str, torch.Tensor], targets: Optional[torch.Tensor] = None):
        coarse_logits = self.coarse_sem_seg_head.layers(features)
        if self.training:
            if targets is None:
                raise ValueError("PointRendSemSegHead: training needs `targets` (N, H, W) labels")
            losses = self.coarse_sem_seg_head.losses(coarse_logits, targets)
            with torch.no_grad():
                point_coords = get_uncertain_point_coords_with_randomness(
                    coarse_logits,
                    calculate_uncertainty,
                    self.train_num_points,
                    self.oversample_ratio,
                    self.importance_sample_ratio,
                )
            coarse_features = point_sample(coarse_logits, point_coords, align_corners=False)
            point_logits = self.point_head(self._fine_features(features, point_coords), coarse_features)
            point_targets = (
                point_sample(targets.unsqueeze(1).to(torch.float), point_coords, mode="nearest", align_corners=False)
                .squeeze(1)
                .to(torch.long)
            )
            losses["loss_sem_seg_point"] = F.cross_entropy(
                point_logits, point_targets, reduction="mean", ignore_index=self.ignore_value
            )
            return None, losses

        sem_seg_logits = coarse_logits.clone()
        for _ in range(self.subdivision_steps):
            sem_seg_logits = F.interpolate(sem_seg_logits, scale_factor=2, mode="bilinear", align_corners=False)
            point_indices, point_coords = get_uncertain_point_coords_on_grid(
                calculate_uncertainty(sem_seg_logits), self.subdivision_num_points
            )
            coarse_features = point_sample(coarse_logits, point_coords, align_corners=False)
            point_logits = self.point_head(self._fine_features(features, point_coords), coarse_features)
            N, C, H, W = sem_seg_logits.shape
            index = point_indices.unsqueeze(1).expand(-1, C, -1)
            sem_seg_logits = sem_seg_logits.reshape(N, C, H * W).scatter_(2, index, point_logits).view(N, C, H, W)
        return sem_seg_logits, {}
