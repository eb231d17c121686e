"""Semantic segmentation: SemanticSegmentor (backbone + sem-seg head) and the
Panoptic FPN semantic head, SemSegFPNHead."""
import math
from typing import Callable, Dict, List, Optional, Tuple, Union

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from detectron2.config import configurable
from detectron2.layers import Conv2d, ShapeSpec, get_norm
from detectron2.layers import _weight_init as weight_init
from detectron2.structures import ImageList
from detectron2.utils.registry import Registry

from ..backbone import Backbone, build_backbone
from ..postprocessing import sem_seg_postprocess
from .build import META_ARCH_REGISTRY
from .dense_detector import check_batched_inputs

__all__ = ["SemanticSegmentor", "SEM_SEG_HEADS_REGISTRY", "SemSegFPNHead", "build_sem_seg_head"]

SEM_SEG_HEADS_REGISTRY = Registry("SEM_SEG_HEADS")
SEM_SEG_HEADS_REGISTRY.__doc__ = """
Registry for semantic segmentation heads, called as ``obj(cfg, input_shape)`` with
``input_shape`` the backbone's dict of ShapeSpec. A head maps (features, targets) to
(predictions or None, dict of losses).
"""


def build_sem_seg_head(cfg, input_shape: Dict[str, ShapeSpec]) -> nn.Module:
    """Build the head named by ``cfg.MODEL.SEM_SEG_HEAD.NAME``."""
    return SEM_SEG_HEADS_REGISTRY.get(cfg.MODEL.SEM_SEG_HEAD.NAME)(cfg, input_shape)


def pad_sem_seg_targets(targets: List[Tensor], backbone: Backbone, ignore_value: int) -> Tensor:
    """Batch per-image (H, W) label maps, padded like the images and filled with
    ``ignore_value`` so that padding takes no part in the loss."""
    for i, t in enumerate(targets):
        if t.dim() != 2:
            raise ValueError(f"'sem_seg' of input {i} must be an (H, W) label map, got shape {tuple(t.shape)}")
        if t.is_floating_point():
            raise TypeError(f"'sem_seg' of input {i} must hold integer class ids, got {t.dtype}")
    return ImageList.from_tensors(
        targets, backbone.size_divisibility, ignore_value, backbone.padding_constraints
    ).tensor


@META_ARCH_REGISTRY.register()
class SemanticSegmentor(nn.Module):
    """A backbone followed by a semantic segmentation head."""

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        sem_seg_head: nn.Module,
        pixel_mean: Tuple[float, ...],
        pixel_std: Tuple[float, ...],
    ):
        """
        Args:
            backbone: the feature extractor.
            sem_seg_head: maps (features, targets) to (predictions, losses).
            pixel_mean, pixel_std: per-channel input normalization.
        """
        super().__init__()
        self.backbone = backbone
        self.sem_seg_head = sem_seg_head
        if len(pixel_mean) != len(pixel_std):
            raise ValueError(f"pixel_mean ({len(pixel_mean)} values) and pixel_std ({len(pixel_std)}) differ in length")
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)

    @classmethod
    def from_config(cls, cfg):
        backbone = build_backbone(cfg)
        return {
            "backbone": backbone,
            "sem_seg_head": build_sem_seg_head(cfg, backbone.output_shape()),
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
        }

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def forward(self, batched_inputs: List[Dict[str, Tensor]]):
        """
        Args:
            batched_inputs: one dict per image with "image" (C, H, W), in training
                "sem_seg" (H, W) integer labels, optional "height"/"width" of the output.

        Returns:
            training: {"loss_sem_seg": ...}. Inference: one dict per image with
            "sem_seg", (num_classes, height, width) logits.
        """
        check_batched_inputs(batched_inputs, "SemanticSegmentor")
        images = [x["image"].to(self.device) for x in batched_inputs]
        images = [(x - self.pixel_mean) / self.pixel_std for x in images]
        images = ImageList.from_tensors(
            images, self.backbone.size_divisibility, padding_constraints=self.backbone.padding_constraints
        )
        features = self.backbone(images.tensor)

        if "sem_seg" in batched_inputs[0]:
            targets = [x["sem_seg"].to(self.device) for x in batched_inputs]
            targets = pad_sem_seg_targets(targets, self.backbone, self.sem_seg_head.ignore_value)
        else:
            targets = None
        if self.training and targets is None:
            raise ValueError("SemanticSegmentor: training needs 'sem_seg' in every input dict")
        results, losses = self.sem_seg_head(features, targets)
        if self.training:
            return losses

        processed_results = []
        for result, input_per_image, image_size in zip(results, batched_inputs, images.image_sizes):
            height = input_per_image.get("height", image_size[0])
            width = input_per_image.get("width", image_size[1])
            processed_results.append({"sem_seg": sem_seg_postprocess(result, image_size, height, width)})
        return processed_results


@SEM_SEG_HEADS_REGISTRY.register()
class SemSegFPNHead(nn.Module):
    """The semantic branch of Panoptic FPN (Kirillov et al., 2019): each level goes
    through conv (+ 2x upsample) stages down to ``common_stride``, the levels are
    summed, and a 1x1 conv predicts per-class logits."""

    @configurable
    def __init__(
        self,
        input_shape: Dict[str, ShapeSpec],
        *,
        num_classes: int,
        conv_dims: int,
        common_stride: int,
        loss_weight: float = 1.0,
        norm: Optional[Union[str, Callable]] = None,
        ignore_value: int = -1,
    ):
        """
        Args:
            input_shape: the input features by name.
            num_classes: number of classes to predict.
            conv_dims: channels of the intermediate convs.
            common_stride: stride at which the levels are summed and predicted.
            loss_weight: multiplier of the loss.
            norm: normalization of the convs (get_norm name or callable).
            ignore_value: target label that takes no part in the loss.
        """
        super().__init__()
        shapes = sorted(input_shape.items(), key=lambda kv: kv[1].stride)
        if not shapes:
            raise ValueError("SemSegFPNHead(input_shape=) cannot be empty!")
        self.in_features = [name for name, _ in shapes]
        self.ignore_value = ignore_value
        self.common_stride = common_stride
        self.loss_weight = loss_weight

        # A plain list plus add_module(name): state_dict keys are "<feature>.<i>.*".
        self.scale_heads = []
        for name, shape in shapes:
            head = self._scale_head(shape, conv_dims, norm)
            self.scale_heads.append(head)
            self.add_module(name, head)
        self.predictor = Conv2d(conv_dims, num_classes, kernel_size=1, stride=1, padding=0)
        weight_init.c2_msra_fill(self.predictor)

    def _scale_head(self, shape: ShapeSpec, conv_dims: int, norm) -> nn.Sequential:
        # One conv per factor of 2 between the level's stride and common_stride (at
        # least one), each followed by a 2x upsample unless already at common_stride.
        num_convs = max(1, int(math.log2(shape.stride) - math.log2(self.common_stride)))
        ops: List[nn.Module] = []
        for k in range(num_convs):
            conv = Conv2d(
                shape.channels if k == 0 else conv_dims,
                conv_dims,
                kernel_size=3,
                stride=1,
                padding=1,
                bias=not norm,
                norm=get_norm(norm, conv_dims),
                activation=F.relu,
            )
            weight_init.c2_msra_fill(conv)
            ops.append(conv)
            if shape.stride != self.common_stride:
                ops.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
        return nn.Sequential(*ops)

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        return {
            "input_shape": {k: v for k, v in input_shape.items() if k in cfg.MODEL.SEM_SEG_HEAD.IN_FEATURES},
            "ignore_value": cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
            "num_classes": cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
            "conv_dims": cfg.MODEL.SEM_SEG_HEAD.CONVS_DIM,
            "common_stride": cfg.MODEL.SEM_SEG_HEAD.COMMON_STRIDE,
            "norm": cfg.MODEL.SEM_SEG_HEAD.NORM,
            "loss_weight": cfg.MODEL.SEM_SEG_HEAD.LOSS_WEIGHT,
        }

    def forward(self, features: Dict[str, Tensor], targets: Optional[Tensor] = None):
        """
        Returns:
            training: (None, {"loss_sem_seg"}). Inference: ((N, num_classes, H, W)
            logits at the padded input resolution, {}).
        """
        x = self.layers(features)
        if self.training:
            if targets is None:
                raise ValueError("SemSegFPNHead: targets are required in training")
            return None, self.losses(x, targets)
        x = F.interpolate(x, scale_factor=self.common_stride, mode="bilinear", align_corners=False)
        return x, {}

    def layers(self, features: Dict[str, Tensor]) -> Tensor:
        """Sum of the per-level heads, then the predictor: logits at common_stride."""
        missing = [f for f in self.in_features if f not in features]
        if missing:
            raise ValueError(f"SemSegFPNHead: features {missing} are missing (got {sorted(features)})")
        x = self.scale_heads[0](features[self.in_features[0]])
        for name, head in zip(self.in_features[1:], self.scale_heads[1:]):
            x = x + head(features[name])
        return self.predictor(x)

    def losses(self, predictions: Tensor, targets: Tensor) -> Dict[str, Tensor]:
        """Cross-entropy of the upsampled logits against (N, H, W) labels."""
        # float32: half-precision bilinear upsampling + cross-entropy loses accuracy.
        predictions = predictions.float()
        predictions = F.interpolate(predictions, scale_factor=self.common_stride, mode="bilinear", align_corners=False)
        if targets.shape[-2:] != predictions.shape[-2:]:
            raise ValueError(
                f"SemSegFPNHead: targets of size {tuple(targets.shape[-2:])} do not match the padded input "
                f"size {tuple(predictions.shape[-2:])}"
            )
        loss = F.cross_entropy(predictions, targets.long(), reduction="mean", ignore_index=self.ignore_value)
        return {"loss_sem_seg": loss * self.loss_weight}
