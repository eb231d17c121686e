"""Mask heads: per-RoI mask logits, the Mask R-CNN loss and mask inference."""
from typing import List

import torch
from torch import nn
from torch.nn import functional as F

from detectron2.config import configurable
from detectron2.layers import Conv2d, ConvTranspose2d, ShapeSpec, cat, get_norm, move_device_like
from detectron2.layers import _weight_init as weight_init
from detectron2.structures import BitMasks, Instances, PolygonMasks
from detectron2.structures.masks import crop_and_resize_all
from detectron2.utils.events import get_event_storage
from detectron2.utils.registry import Registry

__all__ = [
    "BaseMaskRCNNHead",
    "MaskRCNNConvUpsampleHead",
    "build_mask_head",
    "mask_rcnn_inference",
    "mask_rcnn_loss",
    "ROI_MASK_HEAD_REGISTRY",
]

ROI_MASK_HEAD_REGISTRY = Registry("ROI_MASK_HEAD")
ROI_MASK_HEAD_REGISTRY.__doc__ = """
Registry for mask heads: they predict instance masks from per-RoI features.
A registered class is called as ``cls(cfg, input_shape)``.
"""


def _check_mask_logits(pred_mask_logits: torch.Tensor, instances: List[Instances]) -> None:
    if not isinstance(pred_mask_logits, torch.Tensor) or pred_mask_logits.dim() != 4:
        shape = tuple(pred_mask_logits.shape) if isinstance(pred_mask_logits, torch.Tensor) else type(pred_mask_logits)
        raise ValueError(f"argument 'pred_mask_logits' must be a (B, C, M, M) tensor, got {shape}")
    if pred_mask_logits.size(2) != pred_mask_logits.size(3):
        raise ValueError(f"argument 'pred_mask_logits' must hold square masks, got {pred_mask_logits.shape}")
    total = sum(len(x) for x in instances)
    if pred_mask_logits.size(0) != total:
        raise ValueError(
            f"argument 'pred_mask_logits' has {pred_mask_logits.size(0)} masks for {total} instances"
        )


def _put_mask_stats(pred_mask_logits: torch.Tensor, gt_masks_bool: torch.Tensor) -> None:
    """Accuracy, false positive and false negative rates of the masks thresholded at
    logit 0 (probability 0.5)."""
    mask_incorrect = (pred_mask_logits > 0.0) != gt_masks_bool
    # One host copy for the four counts.
    num_incorrect, num_positive, num_false_positive, num_false_negative = torch.stack([
        mask_incorrect.sum(), gt_masks_bool.sum(), (mask_incorrect & ~gt_masks_bool).sum(),
        (mask_incorrect & gt_masks_bool).sum(),
    ]).tolist()
    mask_accuracy = 1 - (num_incorrect / max(mask_incorrect.numel(), 1.0))
    false_positive = num_false_positive / max(gt_masks_bool.numel() - num_positive, 1.0)
    false_negative = num_false_negative / max(num_positive, 1.0)
    storage = get_event_storage()
    storage.put_scalar("mask_rcnn/accuracy", mask_accuracy)
    storage.put_scalar("mask_rcnn/false_positive", false_positive)
    storage.put_scalar("mask_rcnn/false_negative", false_negative)


def _put_mask_images(pred_mask_logits: torch.Tensor, gt_masks: torch.Tensor) -> None:
    storage = get_event_storage()
    vis_masks = torch.cat([pred_mask_logits.sigmoid(), gt_masks], dim=2)
    name = "Left: mask prediction;   Right: mask GT"
    for idx, vis_mask in enumerate(vis_masks):
        storage.put_image(name + f" ({idx})", torch.stack([vis_mask] * 3, dim=0))


@torch.jit.unused
def mask_rcnn_loss(pred_mask_logits: torch.Tensor, instances: List[Instances], vis_period: int = 0) -> torch.Tensor:
    """
    The Mask R-CNN loss: mean per-pixel binary cross-entropy between each RoI's mask
    logits of its gt class and its gt mask cropped to the RoI and resized to M x M.

    Args:
        pred_mask_logits: (B, C, M, M) logits; C is the number of classes, or 1 for
            class-agnostic masks. B is the total number of RoIs in ``instances``.
        instances: per image, foreground RoIs with ``proposal_boxes``, ``gt_masks``
            (BitMasks or PolygonMasks) and ``gt_classes``.
        vis_period: put the predicted and gt masks into the event storage as images
            every this many iterations (0: never).
    """
    if not torch.jit.is_scripting():  # validation TorchScript cannot compile
        _check_mask_logits(pred_mask_logits, instances)
    cls_agnostic_mask = pred_mask_logits.size(1) == 1
    mask_side_len = pred_mask_logits.size(2)

    with_rois = [x for x in instances if len(x) > 0]
    if len(with_rois) == 0:
        return pred_mask_logits.sum() * 0  # keeps the graph connected on an empty batch
    if all(isinstance(x.gt_masks, (BitMasks, PolygonMasks)) for x in with_rois):
        # (R, M, M), one per RoI: one NaN check of all RoIs, gathered gt masks in one RoIAlign
        gt_masks = crop_and_resize_all([x.gt_masks for x in with_rois],
                                       [x.proposal_boxes.tensor for x in with_rois],
                                       mask_side_len, pred_mask_logits.device)
    else:  # other mask types: their own crop_and_resize
        gt_masks = cat([x.gt_masks.crop_and_resize(x.proposal_boxes.tensor, mask_side_len).to(
            device=pred_mask_logits.device) for x in with_rois], dim=0)
    if cls_agnostic_mask:
        pred_mask_logits = pred_mask_logits[:, 0]
    else:
        gt_classes = cat([x.gt_classes.to(dtype=torch.int64) for x in with_rois], dim=0)
        indices = torch.arange(pred_mask_logits.size(0), device=pred_mask_logits.device)
        pred_mask_logits = pred_mask_logits[indices, gt_classes]

    gt_masks_bool = gt_masks if gt_masks.dtype == torch.bool else gt_masks > 0.5
    gt_masks = gt_masks.to(dtype=torch.float32)
    _put_mask_stats(pred_mask_logits, gt_masks_bool)
    if vis_period > 0 and get_event_storage().iter % vis_period == 0:
        _put_mask_images(pred_mask_logits, gt_masks)
    return F.binary_cross_entropy_with_logits(pred_mask_logits, gt_masks, reduction="mean")


def mask_rcnn_inference(pred_mask_logits: torch.Tensor, pred_instances: List[Instances]) -> None:
    """
    Set ``pred_masks`` of each Instances to the (Ri, 1, M, M) mask probabilities of its
    predicted class (``pred_classes``). The masks are still relative to the boxes;
    :func:`detector_postprocess` pastes them into the image.

    Args:
        pred_mask_logits: (B, C, M, M), C = number of classes or 1 (class-agnostic).
        pred_instances: per image, the detections, B in total; modified in place.
    """
    if not torch.jit.is_scripting():  # validation TorchScript cannot compile
        _check_mask_logits(pred_mask_logits, pred_instances)
    cls_agnostic_mask = pred_mask_logits.size(1) == 1
    if cls_agnostic_mask:
        mask_probs_pred = pred_mask_logits.sigmoid()
    else:
        num_masks = pred_mask_logits.shape[0]
        class_pred = cat([i.pred_classes for i in pred_instances])
        # Under tracing the arange is built on CPU and moved, so the trace is device-independent.
        device = class_pred.device if not torch.jit.is_tracing() else torch.device("cpu")
        indices = move_device_like(torch.arange(num_masks, device=device), class_pred)
        mask_probs_pred = pred_mask_logits[indices, class_pred][:, None].sigmoid()

    num_boxes_per_image = [len(i) for i in pred_instances]
    for prob, instances in zip(mask_probs_pred.split(num_boxes_per_image, dim=0), pred_instances):
        instances.pred_masks = prob


class BaseMaskRCNNHead(nn.Module):
    """The loss/inference half of a mask head; subclasses define :meth:`layers`, the
    network that maps per-RoI features to (B, C, M, M) mask logits."""

    @configurable
    def __init__(self, *, loss_weight: float = 1.0, vis_period: int = 0):
        """
        Args:
            loss_weight: multiplier of the mask loss.
            vis_period: see :func:`mask_rcnn_loss`.
        """
        super().__init__()
        self.vis_period = vis_period
        self.loss_weight = loss_weight

    @classmethod
    def from_config(cls, cfg, input_shape):
        return {"vis_period": cfg.VIS_PERIOD}

    def forward(self, x, instances: List[Instances]):
        """
        Args:
            x: per-RoI input features (whatever :meth:`layers` takes).
            instances: per image, the training RoIs (foreground only, with gt fields)
                or the detections at inference.

        Returns:
            {"loss_mask": loss} in training; ``instances`` with ``pred_masks`` set at
            inference.
        """
        x = self.layers(x)
        if self.training:
            return {"loss_mask": mask_rcnn_loss(x, instances, self.vis_period) * self.loss_weight}
        mask_rcnn_inference(x, instances)
        return instances

    def layers(self, x):
        """The mask network; every concrete head overrides this."""
        raise TypeError(f"{type(self).__name__} must override layers(x) to be used as a mask head")


@ROI_MASK_HEAD_REGISTRY.register()
class MaskRCNNConvUpsampleHead(BaseMaskRCNNHead, nn.Sequential):
    """The Mask R-CNN head: ``mask_fcn1..n`` 3x3 convs, a 2x ``deconv`` upsampling and
    a 1x1 ``predictor`` of one mask per class."""

    @configurable
    def __init__(self, input_shape: ShapeSpec, *, num_classes: int, conv_dims: List[int], conv_norm: str = "", **kwargs):
        """
        Args:
            input_shape: shape of the pooled RoI features.
            num_classes: masks predicted per RoI (1 for class-agnostic masks).
            conv_dims: channels of the convs; the last entry is the deconv's.
            conv_norm: normalization after each conv (see :func:`layers.get_norm`).
            kwargs: for :class:`BaseMaskRCNNHead`.
        """
        super().__init__(**kwargs)
        if len(conv_dims) < 1:
            raise ValueError("MaskRCNNConvUpsampleHead: conv_dims must not be empty")
        self.conv_norm_relus = []

        cur_channels = input_shape.channels
        for k, conv_dim in enumerate(conv_dims[:-1]):
            conv = Conv2d(
                cur_channels, conv_dim, kernel_size=3, stride=1, padding=1, bias=not conv_norm,
                norm=get_norm(conv_norm, conv_dim), activation=nn.ReLU(),
            )
            self.add_module(f"mask_fcn{k + 1}", conv)
            self.conv_norm_relus.append(conv)
            cur_channels = conv_dim
        self.deconv = ConvTranspose2d(cur_channels, conv_dims[-1], kernel_size=2, stride=2, padding=0)
        self.add_module("deconv_relu", nn.ReLU())
        self.predictor = Conv2d(conv_dims[-1], num_classes, kernel_size=1, stride=1, padding=0)

        for layer in self.conv_norm_relus + [self.deconv]:
            weight_init.c2_msra_fill(layer)
        # A small init keeps the first mask logits near 0.
        nn.init.normal_(self.predictor.weight, std=0.001)
        if self.predictor.bias is not None:
            nn.init.constant_(self.predictor.bias, 0)

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        head = cfg.MODEL.ROI_MASK_HEAD
        ret.update(
            conv_dims=[head.CONV_DIM] * (head.NUM_CONV + 1),  # the last one is the deconv's
            conv_norm=head.NORM,
            input_shape=input_shape,
            num_classes=1 if head.CLS_AGNOSTIC_MASK else cfg.MODEL.ROI_HEADS.NUM_CLASSES,
        )
        return ret

    def layers(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self:
            x = layer(x)
        return x


def build_mask_head(cfg, input_shape) -> nn.Module:
    """Build the mask head named by ``cfg.MODEL.ROI_MASK_HEAD.NAME``."""
    return ROI_MASK_HEAD_REGISTRY.get(cfg.MODEL.ROI_MASK_HEAD.NAME)(cfg, input_shape)
