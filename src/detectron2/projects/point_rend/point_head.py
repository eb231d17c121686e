"""Point heads: small MLPs (1x1 Conv1d) predicting per-point logits from fine-grained
features and the coarse prediction at those points."""
from typing import List

import torch
from torch import nn
from torch.nn import functional as F

from detectron2.layers import ShapeSpec, cat
from detectron2.layers._weight_init import c2_msra_fill
from detectron2.structures import Instances
from detectron2.utils.events import get_event_storage
from detectron2.utils.registry import Registry

__all__ = ["POINT_HEAD_REGISTRY", "StandardPointHead", "ImplicitPointHead", "build_point_head", "roi_mask_point_loss"]

POINT_HEAD_REGISTRY = Registry("POINT_HEAD")
POINT_HEAD_REGISTRY.__doc__ = """
Registry for point heads, which make predictions for a given set of per-point features.
A registered class is called as ``cls(cfg, input_shape)``.
"""


def roi_mask_point_loss(mask_logits: torch.Tensor, instances: List[Instances], point_labels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of point logits against point labels of the gt class.

    Args:
        mask_logits: (R, C, P) logits; C is the number of classes or 1 (agnostic).
        instances: training instances with ``gt_classes``, R in total.
        point_labels: (R, P) targets in [0, 1]; -1 marks points to ignore.
    """
    agnostic = mask_logits.size(1) == 1
    if point_labels.shape[0] == 0:
        return mask_logits.sum() * 0
    if agnostic:
        mask_logits = mask_logits[:, 0]
    else:
        gt_classes = cat([x.gt_classes.to(torch.int64) for x in instances if len(x) > 0])
        indices = torch.arange(mask_logits.size(0), device=mask_logits.device)
        mask_logits = mask_logits[indices, gt_classes]
    ignored = point_labels == -1
    with torch.no_grad():
        correct = ((mask_logits > 0.0) == (point_labels > 0.5))[~ignored]
        get_event_storage().put_scalar("point/accuracy", correct.sum().item() / max(correct.numel(), 1))
    return F.binary_cross_entropy_with_logits(
        mask_logits, point_labels.to(torch.float32), weight=(~ignored).to(mask_logits.dtype), reduction="mean"
    )


@POINT_HEAD_REGISTRY.register()
class StandardPointHead(nn.Module):
    """A point head multi-layer perceptron, shared by all points: NUM_FC 1x1 Conv1d
    layers ``fc1..fcK`` with ReLU and a ``predictor``. With COARSE_PRED_EACH_LAYER the
    coarse logits are concatenated to the input of every layer."""

    def __init__(self, cfg, input_shape: ShapeSpec):
        super().__init__()
        num_classes = cfg.MODEL.POINT_HEAD.NUM_CLASSES
        fc_dim = cfg.MODEL.POINT_HEAD.FC_DIM
        num_fc = cfg.MODEL.POINT_HEAD.NUM_FC
        cls_agnostic_mask = cfg.MODEL.POINT_HEAD.CLS_AGNOSTIC_MASK
        self.coarse_pred_each_layer = cfg.MODEL.POINT_HEAD.COARSE_PRED_EACH_LAYER

        fc_dim_in = input_shape.channels + num_classes
        self.fc_layers = []
        for k in range(num_fc):
            fc = nn.Conv1d(fc_dim_in, fc_dim, kernel_size=1, stride=1, padding=0, bias=True)
            self.add_module(f"fc{k + 1}", fc)
            self.fc_layers.append(fc)
            fc_dim_in = fc_dim + (num_classes if self.coarse_pred_each_layer else 0)
        num_mask_classes = 1 if cls_agnostic_mask else num_classes
        self.predictor = nn.Conv1d(fc_dim_in, num_mask_classes, kernel_size=1, stride=1, padding=0)

        for layer in self.fc_layers:
            c2_msra_fill(layer)
        # A tiny init keeps the first point predictions close to the coarse ones.
        nn.init.normal_(self.predictor.weight, std=0.001)
        if self.predictor.bias is not None:
            nn.init.constant_(self.predictor.bias, 0)

    def forward(self, fine_grained_features: torch.Tensor, coarse_features: torch.Tensor) -> torch.Tensor:
        """(R, C_fine, P) and (R, num_classes, P) -> (R, num_mask_classes, P) logits."""
        x = torch.cat((fine_grained_features, coarse_features), dim=1)
        for layer in self.fc_layers:
            x = F.relu(layer(x))
            if self.coarse_pred_each_layer:
                x = cat((x, coarse_features), dim=1)
        return self.predictor(x)


@POINT_HEAD_REGISTRY.register()
class ImplicitPointHead(nn.Module):
    """The point head of Implicit PointRend: an MLP whose weights are not learned
    parameters but given per instance (predicted by the coarse head). The input of each
    point is its fine-grained image feature and/or a positional encoding."""

    def __init__(self, cfg, input_shape: ShapeSpec):
        super().__init__()
        self.num_layers = cfg.MODEL.POINT_HEAD.NUM_FC + 1
        self.channels = cfg.MODEL.POINT_HEAD.FC_DIM
        self.image_feature_enabled = cfg.MODEL.IMPLICIT_POINTREND.IMAGE_FEATURE_ENABLED
        self.positional_encoding_enabled = cfg.MODEL.IMPLICIT_POINTREND.POS_ENC_ENABLED
        self.num_classes = cfg.MODEL.POINT_HEAD.NUM_CLASSES if not cfg.MODEL.POINT_HEAD.CLS_AGNOSTIC_MASK else 1
        self.in_channels = input_shape.channels
        if not self.image_feature_enabled:
            self.in_channels = 0
        if self.positional_encoding_enabled:
            self.in_channels += 256
            # Random Fourier features (fixed, not trained) of the box-relative point.
            self.register_buffer("positional_encoding_gaussian_matrix", torch.randn((2, 128)))
        if self.in_channels <= 0:
            raise ValueError("ImplicitPointHead: enable IMAGE_FEATURE_ENABLED or POS_ENC_ENABLED")

        num_weight_params, num_bias_params = [], []
        for l in range(self.num_layers):
            c_in = self.in_channels if l == 0 else self.channels
            c_out = self.num_classes if l == self.num_layers - 1 else self.channels
            num_weight_params.append(c_in * c_out)
            num_bias_params.append(c_out)
        self.num_weight_params = num_weight_params
        self.num_bias_params = num_bias_params
        self.num_params = sum(num_weight_params) + sum(num_bias_params)

    def forward(self, fine_grained_features: torch.Tensor, point_coords: torch.Tensor, parameters: torch.Tensor) -> torch.Tensor:
        """
        Args:
            fine_grained_features: (R, C, P) image features at the points.
            point_coords: (R, P, 2) box-normalized points.
            parameters: (R, num_params) the MLP of each instance.

        Returns:
            (R, num_classes, P) point logits.
        """
        num_instances = fine_grained_features.size(0)
        num_points = fine_grained_features.size(2)
        if num_instances == 0:
            return torch.zeros((0, 1, num_points), device=fine_grained_features.device)
        if parameters.shape != (num_instances, self.num_params):
            raise ValueError(
                f"ImplicitPointHead: parameters must be ({num_instances}, {self.num_params}), "
                f"got {tuple(parameters.shape)}"
            )
        inputs = []
        if self.positional_encoding_enabled:
            locations = 2 * point_coords.reshape(num_instances * num_points, 2) - 1
            locations = 2 * torch.pi * (locations @ self.positional_encoding_gaussian_matrix.to(locations.dtype))
            enc = torch.cat([torch.sin(locations), torch.cos(locations)], dim=1)
            inputs.append(enc.reshape(num_instances, num_points, 256).permute(0, 2, 1))
        if self.image_feature_enabled:
            inputs.append(fine_grained_features)
        x = torch.cat(inputs, dim=1)  # (R, in_channels, P)
        weights, biases = self._parse_params(parameters)
        for i, (w, b) in enumerate(zip(weights, biases)):
            x = torch.bmm(w, x) + b
            if i < self.num_layers - 1:
                x = F.relu(x)
        return x

    def _parse_params(self, parameters: torch.Tensor):
        """Split each instance's flat parameters into per-layer (R, out, in) weights and
        (R, out, 1) biases."""
        n = parameters.size(0)
        chunks = torch.split(parameters, self.num_weight_params + self.num_bias_params, dim=1)
        weights, biases = chunks[: self.num_layers], chunks[self.num_layers :]
        out_w, out_b = [], []
        for l in range(self.num_layers):
            c_in = self.in_channels if l == 0 else self.channels
            c_out = self.num_classes if l == self.num_layers - 1 else self.channels
            out_w.append(weights[l].reshape(n, c_out, c_in))
            out_b.append(biases[l].reshape(n, c_out, 1))
        return out_w, out_b


def build_point_head(cfg, input_channels) -> nn.Module:
    """Build the point head named by ``cfg.MODEL.POINT_HEAD.NAME``."""
    return POINT_HEAD_REGISTRY.get(cfg.MODEL.POINT_HEAD.NAME)(cfg, input_channels)
