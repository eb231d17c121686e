"""Keypoint heads: per-RoI keypoint heatmap logits, their loss and decoding."""
from typing import List, Optional, Union

import torch
from torch import nn
from torch.nn import functional as F

from detectron2.config import configurable
from detectron2.layers import Conv2d, ConvTranspose2d, ShapeSpec, cat, interpolate
from detectron2.structures import Instances, heatmaps_to_keypoints
from detectron2.utils.events import get_event_storage
from detectron2.utils.registry import Registry

__all__ = [
    "ROI_KEYPOINT_HEAD_REGISTRY",
    "build_keypoint_head",
    "BaseKeypointRCNNHead",
    "KRCNNConvDeconvUpsampleHead",
    "keypoint_rcnn_inference",
    "keypoint_rcnn_loss",
]

# Batches whose loss was skipped for lack of a visible keypoint, over the whole run.
_TOTAL_SKIPPED = 0

ROI_KEYPOINT_HEAD_REGISTRY = Registry("ROI_KEYPOINT_HEAD")
ROI_KEYPOINT_HEAD_REGISTRY.__doc__ = """
Registry for keypoint heads: they predict keypoint heatmaps from per-RoI features.
A registered class is called as ``cls(cfg, input_shape)``.
"""


def build_keypoint_head(cfg, input_shape) -> nn.Module:
    """Build the keypoint head named by ``cfg.MODEL.ROI_KEYPOINT_HEAD.NAME``."""
    return ROI_KEYPOINT_HEAD_REGISTRY.get(cfg.MODEL.ROI_KEYPOINT_HEAD.NAME)(cfg, input_shape)


def _check_keypoint_logits(pred_keypoint_logits: torch.Tensor, instances: List[Instances]) -> None:
    if not isinstance(pred_keypoint_logits, torch.Tensor) or pred_keypoint_logits.dim() != 4:
        got = tuple(pred_keypoint_logits.shape) if isinstance(pred_keypoint_logits, torch.Tensor) else type(pred_keypoint_logits)
        raise ValueError(f"argument 'pred_keypoint_logits' must be a (R, K, S, S) tensor, got {got}")
    total = sum(len(x) for x in instances)
    if pred_keypoint_logits.size(0) != total:
        raise ValueError(
            f"argument 'pred_keypoint_logits' has {pred_keypoint_logits.size(0)} heatmaps for {total} instances"
        )


def _count_skipped_batch() -> None:
    global _TOTAL_SKIPPED
    _TOTAL_SKIPPED += 1
    get_event_storage().put_scalar("kpts_num_skipped_batches", _TOTAL_SKIPPED, smoothing_hint=False)


def keypoint_rcnn_loss(
    pred_keypoint_logits: torch.Tensor, instances: List[Instances], normalizer: Optional[float]
) -> torch.Tensor:
    """
    Softmax cross-entropy over the S*S heatmap cells of every visible keypoint that
    falls inside its RoI, summed and divided by ``normalizer``.

    Args:
        pred_keypoint_logits: (R, K, S, S) heatmap logits; R is the total number of
            RoIs in ``instances``.
        instances: per image, RoIs with ``proposal_boxes`` and ``gt_keypoints``.
        normalizer: divide the summed loss by this; None divides by the number of
            visible keypoints.
    """
    if not torch.jit.is_scripting():  # validation TorchScript cannot compile
        _check_keypoint_logits(pred_keypoint_logits, instances)
    heatmaps = []
    valid = []
    keypoint_side_len = pred_keypoint_logits.shape[2]
    for instances_per_image in instances:
        if len(instances_per_image) == 0:
            continue
        heatmaps_per_image, valid_per_image = instances_per_image.gt_keypoints.to_heatmap(
            instances_per_image.proposal_boxes.tensor, keypoint_side_len
        )
        heatmaps.append(heatmaps_per_image.view(-1))
        valid.append(valid_per_image.view(-1))

    if len(heatmaps):
        keypoint_targets = cat(heatmaps, dim=0)
        valid = torch.nonzero(cat(valid, dim=0)).squeeze(1)

    if len(heatmaps) == 0 or valid.numel() == 0:
        _count_skipped_batch()
        return pred_keypoint_logits.sum() * 0

    num_rois, num_keypoints, height, width = pred_keypoint_logits.shape
    pred_keypoint_logits = pred_keypoint_logits.view(num_rois * num_keypoints, height * width)
    keypoint_loss = F.cross_entropy(pred_keypoint_logits[valid], keypoint_targets[valid], reduction="sum")
    if normalizer is None:
        normalizer = valid.numel()
    return keypoint_loss / normalizer


def keypoint_rcnn_inference(pred_keypoint_logits: torch.Tensor, pred_instances: List[Instances]) -> None:
    """
    Decode heatmaps into keypoints inside the predicted boxes and set, per image,
    ``pred_keypoints`` (Ri, K, 3) as (x, y, score) and ``pred_keypoint_heatmaps``
    (Ri, K, S, S) logits.

    Args:
        pred_keypoint_logits: (R, K, S, S).
        pred_instances: per image, detections with ``pred_boxes``; modified in place.
    """
    if not torch.jit.is_scripting():  # validation TorchScript cannot compile
        _check_keypoint_logits(pred_keypoint_logits, pred_instances)
    bboxes_flat = cat([b.pred_boxes.tensor for b in pred_instances], dim=0)
    pred_keypoint_logits = pred_keypoint_logits.detach()
    keypoint_results = heatmaps_to_keypoints(pred_keypoint_logits, bboxes_flat.detach())  # (R, K, 4)
    num_instances_per_image = [len(i) for i in pred_instances]
    keypoint_results = keypoint_results.split(num_instances_per_image, dim=0)
    heatmap_results = pred_keypoint_logits.split(num_instances_per_image, dim=0)

    for keypoints, heatmaps, instances in zip(keypoint_results, heatmap_results, pred_instances):
        # Columns (x, y, logit, score): keep x, y and the normalized score.
        instances.pred_keypoints = keypoints[:, :, [0, 1, 3]]
        instances.pred_keypoint_heatmaps = heatmaps


class BaseKeypointRCNNHead(nn.Module):
    """The loss/inference half of a keypoint head; subclasses define :meth:`layers`,
    the network that maps per-RoI features to (R, K, S, S) heatmap logits."""

    @configurable
    def __init__(self, *, num_keypoints: int, loss_weight: float = 1.0, loss_normalizer: Union[float, str] = 1.0):
        """
        Args:
            num_keypoints: keypoints per instance.
            loss_weight: multiplier of the keypoint loss.
            loss_normalizer: "visible" divides the loss of a batch by its number of
                visible keypoints; a number divides it by that number times the number
                of images.
        """
        super().__init__()
        if not (loss_normalizer == "visible" or isinstance(loss_normalizer, (int, float))):
            raise ValueError(
                f"BaseKeypointRCNNHead: loss_normalizer must be 'visible' or a number, got {loss_normalizer!r}"
            )
        self.num_keypoints = num_keypoints
        self.loss_weight = loss_weight
        self.loss_normalizer = loss_normalizer

    @classmethod
    def from_config(cls, cfg, input_shape):
        head = cfg.MODEL.ROI_KEYPOINT_HEAD
        ret = {"loss_weight": head.LOSS_WEIGHT, "num_keypoints": head.NUM_KEYPOINTS}
        if head.NORMALIZE_LOSS_BY_VISIBLE_KEYPOINTS:
            ret["loss_normalizer"] = "visible"
        else:
            # The expected number of keypoints of one image's foreground RoIs.
            ret["loss_normalizer"] = (
                ret["num_keypoints"] * cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE * cfg.MODEL.ROI_HEADS.POSITIVE_FRACTION
            )
        return ret

    def forward(self, x, instances: List[Instances]):
        """
        Args:
            x: per-RoI input features (whatever :meth:`layers` takes).
            instances: per image, the training RoIs or the detections at inference.

        Returns:
            {"loss_keypoint": loss} in training; ``instances`` with ``pred_keypoints``
            and ``pred_keypoint_heatmaps`` at inference.
        """
        x = self.layers(x)
        if self.training:
            num_images = len(instances)
            normalizer = None if self.loss_normalizer == "visible" else num_images * self.loss_normalizer
            return {"loss_keypoint": keypoint_rcnn_loss(x, instances, normalizer=normalizer) * self.loss_weight}
        keypoint_rcnn_inference(x, instances)
        return instances

    def layers(self, x):
        """The keypoint network; every concrete head overrides this."""
        raise TypeError(f"{type(self).__name__} must override layers(x) to be used as a keypoint head")


@ROI_KEYPOINT_HEAD_REGISTRY.register()
class KRCNNConvDeconvUpsampleHead(BaseKeypointRCNNHead, nn.Sequential):
    """The Keypoint R-CNN head: ``conv_fcn1..n`` 3x3 convs, a stride-2 deconv
    ``score_lowres`` to K heatmaps, then 2x bilinear upsampling."""

    @configurable
    def __init__(self, input_shape: ShapeSpec, *, num_keypoints: int, conv_dims: List[int], **kwargs):
        """
        Args:
            input_shape: shape of the pooled RoI features.
            num_keypoints: keypoints per instance.
            conv_dims: channels of each conv.
            kwargs: for :class:`BaseKeypointRCNNHead`.
        """
        super().__init__(num_keypoints=num_keypoints, **kwargs)
        self.up_scale = 2.0
        in_channels = input_shape.channels
        for idx, layer_channels in enumerate(conv_dims, 1):
            self.add_module(f"conv_fcn{idx}", Conv2d(in_channels, layer_channels, 3, stride=1, padding=1))
            self.add_module(f"conv_fcn_relu{idx}", nn.ReLU())
            in_channels = layer_channels
        deconv_kernel = 4
        self.score_lowres = ConvTranspose2d(
            in_channels, num_keypoints, deconv_kernel, stride=2, padding=deconv_kernel // 2 - 1
        )
        for name, param in self.named_parameters():
            if "bias" in name:
                nn.init.constant_(param, 0)
            elif "weight" in name:
                # Caffe2's MSRAFill.
                nn.init.kaiming_normal_(param, mode="fan_out", nonlinearity="relu")

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        ret["input_shape"] = input_shape
        ret["conv_dims"] = cfg.MODEL.ROI_KEYPOINT_HEAD.CONV_DIMS
        return ret

    def layers(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self:
            x = layer(x)
        return interpolate(x, scale_factor=self.up_scale, mode="bilinear", align_corners=False)
