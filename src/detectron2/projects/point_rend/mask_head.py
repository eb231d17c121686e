"""PointRend's instance-mask heads: a coarse conv+fc head on RoI-pooled features and
point-wise refinement by adaptive subdivision (Kirillov et al., 2020)."""
import logging
import math
from typing import Dict, List, Tuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from detectron2.config import configurable
from detectron2.layers import Conv2d, ShapeSpec, cat, interpolate
from detectron2.layers._weight_init import c2_msra_fill, c2_xavier_fill
from detectron2.modeling import ROI_MASK_HEAD_REGISTRY
from detectron2.modeling.roi_heads.mask_head import mask_rcnn_inference, mask_rcnn_loss
from detectron2.structures import Boxes, Instances

from .point_features import (
    generate_regular_grid_point_coords,
    get_point_coords_wrt_image,
    get_uncertain_point_coords_on_grid,
    get_uncertain_point_coords_with_randomness,
    point_sample,
    point_sample_fine_grained_features,
    sample_point_labels,
)
from .._errors import ProjectConfigError
from .point_head import build_point_head, roi_mask_point_loss

__all__ = ["ConvFCHead", "PointRendMaskHead", "ImplicitPointRendMaskHead", "calculate_uncertainty"]

logger = logging.getLogger(__name__)


def calculate_uncertainty(logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Uncertainty of mask logits: minus the absolute logit of the predicted (or gt)
    class, so points near the decision boundary score highest.

    Args:
        logits: (R, C, ...) mask logits; C = 1 for class-agnostic masks.
        classes: (R,) the class of each mask (unused when C = 1).

    Returns:
        (R, 1, ...) scores.
    """
    if logits.shape[1] == 1:
        selected = logits.clone()
    else:
        selected = logits[torch.arange(logits.shape[0], device=logits.device), classes].unsqueeze(1)
    return -torch.abs(selected)


@ROI_MASK_HEAD_REGISTRY.register()
class ConvFCHead(nn.Module):
    """The coarse head of PointRend: an optional 1x1 conv reducing channels, a 2x2
    stride-2 conv, fully-connected layers ``fc1..`` and a linear ``prediction`` reshaped
    to ``output_shape``."""

    _version = 2

    @configurable
    def __init__(self, input_shape: ShapeSpec, *, conv_dim: int, fc_dims: List[int], output_shape: Tuple[int, ...]):
        """
        Args:
            input_shape: channels, height and width of the pooled RoI features.
            conv_dim: channels of the conv layers.
            fc_dims: sizes of the hidden fc layers (at least one).
            output_shape: shape of the prediction of each RoI, e.g. (C, 7, 7).
        """
        super().__init__()
        if len(fc_dims) == 0:
            raise ProjectConfigError("ConvFCHead: fc_dims must have at least one layer")
        self.output_shape = tuple(output_shape)
        input_channels, input_h, input_w = input_shape.channels, input_shape.height, input_shape.width

        if input_channels < conv_dim:
            raise ProjectConfigError(
                f"ConvFCHead: input channels ({input_channels}) must be >= conv_dim ({conv_dim}); "
                "set MODEL.ROI_MASK_HEAD.CONV_DIM to at most the feature channels"
            )
        self.conv_layers = []
        if input_channels > conv_dim:
            self.reduce_channel_dim_conv = Conv2d(
                input_channels, conv_dim, kernel_size=1, stride=1, padding=0, bias=True, activation=F.relu
            )
            self.conv_layers.append(self.reduce_channel_dim_conv)
        self.reduce_spatial_dim_conv = Conv2d(
            conv_dim, conv_dim, kernel_size=2, stride=2, padding=0, bias=True, activation=F.relu
        )
        self.conv_layers.append(self.reduce_spatial_dim_conv)

        input_dim = conv_dim * input_h * input_w // 4
        self.fcs = []
        for k, fc_dim in enumerate(fc_dims):
            fc = nn.Linear(input_dim, fc_dim)
            self.add_module(f"fc{k + 1}", fc)
            self.fcs.append(fc)
            input_dim = fc_dim
        self.prediction = nn.Linear(fc_dims[-1], int(np.prod(self.output_shape)))
        nn.init.normal_(self.prediction.weight, std=0.001)
        nn.init.constant_(self.prediction.bias, 0)

        for layer in self.conv_layers:
            c2_msra_fill(layer)
        for layer in self.fcs:
            c2_xavier_fill(layer)

    @classmethod
    def from_config(cls, cfg, input_shape):
        head = cfg.MODEL.ROI_MASK_HEAD
        side = head.OUTPUT_SIDE_RESOLUTION
        num_classes = 1 if head.CLS_AGNOSTIC_MASK else cfg.MODEL.ROI_HEADS.NUM_CLASSES
        return {
            "input_shape": input_shape,
            "conv_dim": head.CONV_DIM,
            "fc_dims": [head.FC_DIM] * head.NUM_FC,
            "output_shape": (num_classes, side, side),
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        for layer in self.conv_layers:
            x = layer(x)
        x = torch.flatten(x, start_dim=1)
        for layer in self.fcs:
            x = F.relu(layer(x))
        return self.prediction(x).view(n, *self.output_shape)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        # Checkpoints before version 2 named the fc layers "coarse_mask_fc{i}".
        version = local_metadata.get("version", None)
        if version is None or version < 2:
            for k in list(state_dict.keys()):
                if k.startswith(prefix + "coarse_mask_fc"):
                    state_dict[k.replace(prefix + "coarse_mask_fc", prefix + "fc")] = state_dict.pop(k)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)


@ROI_MASK_HEAD_REGISTRY.register()
class PointRendMaskHead(nn.Module):
    """Mask head of PointRend. It pools its own features (ROI_MASK_HEAD.POOLER_TYPE
    must be ""): a coarse mask from ``coarse_head`` on a regular grid of points in each
    box, then, in training, a point loss on uncertain points and, at inference, adaptive
    subdivision that re-predicts the most uncertain points at doubling resolution."""

    def __init__(self, cfg, input_shape: Dict[str, ShapeSpec]):
        super().__init__()
        if not isinstance(input_shape, dict):
            raise TypeError(
                f"{type(self).__name__} pools its own features: set MODEL.ROI_MASK_HEAD.POOLER_TYPE "
                f"to '' so it gets a dict of feature shapes, got {type(input_shape).__name__}"
            )
        self._feature_scales = {k: 1.0 / v.stride for k, v in input_shape.items()}
        # The point head is built first: the order of parameter creation follows upstream.
        self._init_point_head(cfg, input_shape)
        self.roi_pooler_in_features = cfg.MODEL.ROI_MASK_HEAD.IN_FEATURES
        self.roi_pooler_size = cfg.MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION
        _check_features("ROI_MASK_HEAD.IN_FEATURES", self.roi_pooler_in_features, input_shape)
        in_channels = int(np.sum([input_shape[f].channels for f in self.roi_pooler_in_features]))
        self._init_roi_head(
            cfg, ShapeSpec(channels=in_channels, width=self.roi_pooler_size, height=self.roi_pooler_size)
        )

    def _init_roi_head(self, cfg, input_shape: ShapeSpec) -> None:
        self.coarse_head = ConvFCHead(cfg, input_shape)

    def _init_point_head(self, cfg, input_shape: Dict[str, ShapeSpec]) -> None:
        self.mask_point_on = cfg.MODEL.ROI_MASK_HEAD.POINT_HEAD_ON
        if not self.mask_point_on:
            return
        _check_num_classes(cfg)
        point = cfg.MODEL.POINT_HEAD
        self.mask_point_in_features = point.IN_FEATURES
        _check_features("POINT_HEAD.IN_FEATURES", self.mask_point_in_features, input_shape)
        self.mask_point_train_num_points = point.TRAIN_NUM_POINTS
        self.mask_point_oversample_ratio = point.OVERSAMPLE_RATIO
        self.mask_point_importance_sample_ratio = point.IMPORTANCE_SAMPLE_RATIO
        self.mask_point_subdivision_init_resolution = cfg.MODEL.ROI_MASK_HEAD.OUTPUT_SIDE_RESOLUTION
        self.mask_point_subdivision_steps = point.SUBDIVISION_STEPS
        self.mask_point_subdivision_num_points = point.SUBDIVISION_NUM_POINTS
        in_channels = int(np.sum([input_shape[f].channels for f in self.mask_point_in_features]))
        self.point_head = build_point_head(cfg, ShapeSpec(channels=in_channels, width=1, height=1))
        # A step that would re-predict every point of the upsampled mask is the same as
        # starting at twice the resolution: skip it.
        while 4 * self.mask_point_subdivision_init_resolution**2 <= self.mask_point_subdivision_num_points:
            self.mask_point_subdivision_init_resolution *= 2
            self.mask_point_subdivision_steps -= 1

    def forward(self, features: Dict[str, torch.Tensor], instances: List[Instances]):
        """Training: {"loss_mask", "loss_mask_point"} for the foreground proposals.
        Inference: the instances with ``pred_masks`` (R, 1, M, M) probabilities."""
        if self.training:
            proposal_boxes = [x.proposal_boxes for x in instances]
            coarse_mask = self.coarse_head(self._roi_pooler(features, proposal_boxes))
            losses = {"loss_mask": mask_rcnn_loss(coarse_mask, instances)}
            if not self.mask_point_on:
                return losses
            point_coords, point_labels = self._sample_train_points(coarse_mask, instances)
            fine = self._point_pooler(features, proposal_boxes, point_coords)
            point_logits = self._get_point_logits(fine, point_coords, coarse_mask)
            losses["loss_mask_point"] = roi_mask_point_loss(point_logits, instances, point_labels)
            return losses
        pred_boxes = [x.pred_boxes for x in instances]
        coarse_mask = self.coarse_head(self._roi_pooler(features, pred_boxes))
        return self._subdivision_inference(features, coarse_mask, instances)

    def _roi_pooler(self, features: Dict[str, torch.Tensor], boxes: List[Boxes]) -> torch.Tensor:
        """(R, C, S, S) features on a regular S x S grid of each box: RoIAlign with one
        sample per bin, over every level of ROI_MASK_HEAD.IN_FEATURES concatenated."""
        features_list = [features[k] for k in self.roi_pooler_in_features]
        scales = [self._feature_scales[k] for k in self.roi_pooler_in_features]
        num_boxes = sum(len(b) for b in boxes)
        size = self.roi_pooler_size
        grid = generate_regular_grid_point_coords(num_boxes, size, features_list[0].device)
        roi_features, _ = point_sample_fine_grained_features(features_list, scales, boxes, grid)
        return roi_features.view(num_boxes, roi_features.shape[1], size, size)

    def _sample_train_points(self, coarse_mask: torch.Tensor, instances: List[Instances]):
        gt_classes = cat([x.gt_classes for x in instances])
        with torch.no_grad():
            point_coords = get_uncertain_point_coords_with_randomness(
                coarse_mask,
                lambda logits: calculate_uncertainty(logits, gt_classes),
                self.mask_point_train_num_points,
                self.mask_point_oversample_ratio,
                self.mask_point_importance_sample_ratio,
            )
            boxes = Boxes.cat([x.proposal_boxes for x in instances])
            coords_wrt_image = get_point_coords_wrt_image(boxes.tensor, point_coords)
            point_labels = sample_point_labels(instances, coords_wrt_image)
        return point_coords, point_labels

    def _point_pooler(self, features, boxes: List[Boxes], point_coords: torch.Tensor) -> torch.Tensor:
        features_list = [features[k] for k in self.mask_point_in_features]
        scales = [self._feature_scales[k] for k in self.mask_point_in_features]
        fine, _ = point_sample_fine_grained_features(features_list, scales, boxes, point_coords)
        return fine

    def _get_point_logits(self, fine_grained_features, point_coords, coarse_mask):
        coarse_features = point_sample(coarse_mask, point_coords, align_corners=False)
        return self.point_head(fine_grained_features, coarse_features)

    def _subdivision_inference(self, features, mask_representations, instances: List[Instances]):
        if not self.mask_point_on:
            mask_rcnn_inference(mask_representations, instances)
            return instances
        pred_boxes = [x.pred_boxes for x in instances]
        pred_classes = cat([x.pred_classes for x in instances])
        resolution = self.mask_point_subdivision_init_resolution
        # Step 0 predicts every point of a regular grid; each further step upsamples 2x
        # and re-predicts the most uncertain points only.
        point_coords = generate_regular_grid_point_coords(pred_classes.size(0), resolution, mask_representations.device)
        fine = self._point_pooler(features, pred_boxes, point_coords)
        point_logits = self._get_point_logits(fine, point_coords, mask_representations)
        R, C, _ = point_logits.shape
        mask_logits = point_logits.reshape(R, C, resolution, resolution)
        if R == 0:
            mask_rcnn_inference(mask_logits, instances)
            return instances
        for _ in range(self.mask_point_subdivision_steps):
            mask_logits = interpolate(mask_logits, scale_factor=2, mode="bilinear", align_corners=False)
            uncertainty_map = calculate_uncertainty(mask_logits, pred_classes)
            point_indices, point_coords = get_uncertain_point_coords_on_grid(
                uncertainty_map, self.mask_point_subdivision_num_points
            )
            fine = self._point_pooler(features, pred_boxes, point_coords)
            point_logits = self._get_point_logits(fine, point_coords, mask_representations)
            R, C, H, W = mask_logits.shape
            index = point_indices.unsqueeze(1).expand(-1, C, -1)
            mask_logits = mask_logits.reshape(R, C, H * W).scatter_(2, index, point_logits).view(R, C, H, W)
        mask_rcnn_inference(mask_logits, instances)
        return instances


@ROI_MASK_HEAD_REGISTRY.register()
class ImplicitPointRendMaskHead(PointRendMaskHead):
    """Implicit PointRend (Cheng et al., 2021): the coarse head predicts, per instance,
    the parameters of the point MLP (``parameter_head``); training samples points
    uniformly and adds an L2 penalty on the predicted parameters."""

    def _init_roi_head(self, cfg, input_shape: ShapeSpec) -> None:
        self.parameter_head = ConvFCHead(cfg, input_shape, output_shape=(self.num_params,))
        self.regularizer = cfg.MODEL.IMPLICIT_POINTREND.PARAMS_L2_REGULARIZER

    def _init_point_head(self, cfg, input_shape: Dict[str, ShapeSpec]) -> None:
        self.mask_point_on = True
        _check_num_classes(cfg)
        point = cfg.MODEL.POINT_HEAD
        self.mask_point_in_features = point.IN_FEATURES
        _check_features("POINT_HEAD.IN_FEATURES", self.mask_point_in_features, input_shape)
        self.mask_point_train_num_points = point.TRAIN_NUM_POINTS
        self.mask_point_subdivision_steps = point.SUBDIVISION_STEPS
        self.mask_point_subdivision_num_points = point.SUBDIVISION_NUM_POINTS
        in_channels = int(np.sum([input_shape[f].channels for f in self.mask_point_in_features]))
        self.point_head = build_point_head(cfg, ShapeSpec(channels=in_channels, width=1, height=1))
        self.num_params = self.point_head.num_params
        side = int(math.sqrt(self.mask_point_subdivision_num_points))
        if side * side != self.mask_point_subdivision_num_points:
            raise ProjectConfigError(
                "ImplicitPointRendMaskHead: POINT_HEAD.SUBDIVISION_NUM_POINTS must be a square, "
                f"got {self.mask_point_subdivision_num_points}"
            )
        self.mask_point_subdivision_init_resolution = side

    def forward(self, features: Dict[str, torch.Tensor], instances: List[Instances]):
        if self.training:
            proposal_boxes = [x.proposal_boxes for x in instances]
            parameters = self.parameter_head(self._roi_pooler(features, proposal_boxes))
            losses = {"loss_l2": self.regularizer * (parameters**2).mean()}
            point_coords, point_labels = self._uniform_sample_train_points(instances)
            fine = self._point_pooler(features, proposal_boxes, point_coords)
            point_logits = self._get_point_logits(fine, point_coords, parameters)
            losses["loss_mask_point"] = roi_mask_point_loss(point_logits, instances, point_labels)
            return losses
        pred_boxes = [x.pred_boxes for x in instances]
        parameters = self.parameter_head(self._roi_pooler(features, pred_boxes))
        return self._subdivision_inference(features, parameters, instances)

    def _uniform_sample_train_points(self, instances: List[Instances]):
        boxes = Boxes.cat([x.proposal_boxes for x in instances])
        point_coords = torch.rand(len(boxes), self.mask_point_train_num_points, 2, device=boxes.tensor.device)
        coords_wrt_image = get_point_coords_wrt_image(boxes.tensor, point_coords)
        return point_coords, sample_point_labels(instances, coords_wrt_image)

    def _get_point_logits(self, fine_grained_features, point_coords, parameters):
        return self.point_head(fine_grained_features, point_coords, parameters)


def _check_num_classes(cfg) -> None:
    if cfg.MODEL.ROI_HEADS.NUM_CLASSES != cfg.MODEL.POINT_HEAD.NUM_CLASSES:
        raise ProjectConfigError(
            "PointRend: MODEL.POINT_HEAD.NUM_CLASSES must equal MODEL.ROI_HEADS.NUM_CLASSES, got "
            f"{cfg.MODEL.POINT_HEAD.NUM_CLASSES} and {cfg.MODEL.ROI_HEADS.NUM_CLASSES}"
        )


def _check_features(key: str, names, input_shape: Dict[str, ShapeSpec]) -> None:
    missing = [f for f in names if f not in input_shape]
    if missing:
        raise ProjectConfigError(f"PointRend: {key} has {missing}, available features: {sorted(input_shape)}")
