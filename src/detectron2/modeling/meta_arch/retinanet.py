"""RetinaNet (Lin et al., "Focal Loss for Dense Object Detection", 2017)."""
import logging
import math
from typing import List, Tuple, Union, Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from detectron2.config import configurable
from detectron2.layers import CycleBatchNormList, ShapeSpec, cat, get_norm
from detectron2.structures import Boxes, ImageList, Instances, pairwise_iou
from detectron2.utils.events import get_event_storage

from ..anchor_generator import build_anchor_generator
from ..backbone import Backbone, build_backbone
from ..box_regression import Box2BoxTransform, _dense_box_regression_loss
from ..matcher import Matcher
from .build import META_ARCH_REGISTRY
from .dense_detector import DenseDetector, sigmoid_focal_loss

__all__ = ["RetinaNet", "RetinaNetHead"]

logger = logging.getLogger(__name__)

_BOX_REG_LOSS_TYPES = ("smooth_l1", "giou", "diou", "ciou")


def check_gt_instances(gt_instances: List[Instances], owner: str) -> None:
    """Training targets must carry gt_boxes (Boxes) and gt_classes."""
    for i, inst in enumerate(gt_instances):
        if not isinstance(inst, Instances):
            raise TypeError(f"{owner}: 'instances' of input {i} must be Instances, got {type(inst).__name__}")
        if not inst.has("gt_boxes") or not inst.has("gt_classes"):
            raise ValueError(f"{owner}: 'instances' of input {i} must have gt_boxes and gt_classes")
        if not isinstance(inst.gt_boxes, Boxes):
            raise TypeError(f"{owner}: gt_boxes of input {i} must be Boxes, got {type(inst.gt_boxes).__name__}")


@META_ARCH_REGISTRY.register()
class RetinaNet(DenseDetector):
    """RetinaNet: anchors matched to ground truth by IoU, focal loss for classification,
    smooth L1 (or an IoU loss) for box regression, per-class NMS at test time."""

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        head: nn.Module,
        head_in_features: List[str],
        anchor_generator: nn.Module,
        box2box_transform: Box2BoxTransform,
        anchor_matcher: Matcher,
        num_classes: int,
        focal_loss_alpha: float = 0.25,
        focal_loss_gamma: float = 2.0,
        smooth_l1_beta: float = 0.0,
        box_reg_loss_type: str = "smooth_l1",
        test_score_thresh: float = 0.05,
        test_topk_candidates: int = 1000,
        test_nms_thresh: float = 0.5,
        max_detections_per_image: int = 100,
        pixel_mean: Tuple[float, ...],
        pixel_std: Tuple[float, ...],
        vis_period: int = 0,
        input_format: str = "BGR",
    ):
        """
        Args:
            backbone, head, head_in_features, pixel_mean, pixel_std: see DenseDetector;
                the head returns (logits, deltas), each a list over levels.
            anchor_generator: makes one list of Boxes (one per level) from the features.
            box2box_transform: the anchor <-> box delta parameterization.
            anchor_matcher: labels anchors foreground / background / ignored by IoU.
            num_classes: number of foreground classes.
            focal_loss_alpha, focal_loss_gamma: focal loss parameters.
            smooth_l1_beta: beta of the smooth L1 box loss (0: L1).
            box_reg_loss_type: "smooth_l1", "giou", "diou" or "ciou".
            test_score_thresh: drop detections scoring below this.
            test_topk_candidates: decode at most this many candidates per level.
            test_nms_thresh: IoU threshold of the per-class NMS.
            max_detections_per_image: keep at most this many detections per image.
            vis_period, input_format: for training visualization.
        """
        super().__init__(backbone, head, head_in_features, pixel_mean=pixel_mean, pixel_std=pixel_std)
        if num_classes <= 0:
            raise ValueError(f"RetinaNet: num_classes must be positive, got {num_classes}")
        if box_reg_loss_type not in _BOX_REG_LOSS_TYPES:
            raise ValueError(f"RetinaNet: box_reg_loss_type must be one of {_BOX_REG_LOSS_TYPES}, got {box_reg_loss_type!r}")
        self.num_classes = num_classes
        self.anchor_generator = anchor_generator
        self.box2box_transform = box2box_transform
        self.anchor_matcher = anchor_matcher

        self.focal_loss_alpha = focal_loss_alpha
        self.focal_loss_gamma = focal_loss_gamma
        self.smooth_l1_beta = smooth_l1_beta
        self.box_reg_loss_type = box_reg_loss_type

        self.test_score_thresh = test_score_thresh
        self.test_topk_candidates = test_topk_candidates
        self.test_nms_thresh = test_nms_thresh
        self.max_detections_per_image = max_detections_per_image

        self.vis_period = vis_period
        self.input_format = input_format

    @classmethod
    def from_config(cls, cfg):
        backbone = build_backbone(cfg)
        backbone_shape = backbone.output_shape()
        feature_shapes = [backbone_shape[f] for f in cfg.MODEL.RETINANET.IN_FEATURES]
        return {
            "backbone": backbone,
            "head": RetinaNetHead(cfg, feature_shapes),
            "anchor_generator": build_anchor_generator(cfg, feature_shapes),
            "box2box_transform": Box2BoxTransform(weights=cfg.MODEL.RETINANET.BBOX_REG_WEIGHTS),
            # Low-quality matches: every ground truth gets at least its best anchors.
            "anchor_matcher": Matcher(
                cfg.MODEL.RETINANET.IOU_THRESHOLDS, cfg.MODEL.RETINANET.IOU_LABELS, allow_low_quality_matches=True
            ),
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "num_classes": cfg.MODEL.RETINANET.NUM_CLASSES,
            "head_in_features": cfg.MODEL.RETINANET.IN_FEATURES,
            "focal_loss_alpha": cfg.MODEL.RETINANET.FOCAL_LOSS_ALPHA,
            "focal_loss_gamma": cfg.MODEL.RETINANET.FOCAL_LOSS_GAMMA,
            "smooth_l1_beta": cfg.MODEL.RETINANET.SMOOTH_L1_LOSS_BETA,
            "box_reg_loss_type": cfg.MODEL.RETINANET.BBOX_REG_LOSS_TYPE,
            "test_score_thresh": cfg.MODEL.RETINANET.SCORE_THRESH_TEST,
            "test_topk_candidates": cfg.MODEL.RETINANET.TOPK_CANDIDATES_TEST,
            "test_nms_thresh": cfg.MODEL.RETINANET.NMS_THRESH_TEST,
            "max_detections_per_image": cfg.TEST.DETECTIONS_PER_IMAGE,
            "vis_period": cfg.VIS_PERIOD,
            "input_format": cfg.INPUT.FORMAT,
        }

    def forward_training(
        self, images: ImageList, features: List[Tensor], predictions, gt_instances: List[Instances]
    ):
        check_gt_instances(gt_instances, "RetinaNet")
        pred_logits, pred_anchor_deltas = self._transpose_dense_predictions(predictions, [self.num_classes, 4])
        anchors = self.anchor_generator(features)
        gt_labels, gt_boxes = self.label_anchors(anchors, gt_instances)
        return self.losses(anchors, pred_logits, gt_labels, pred_anchor_deltas, gt_boxes)

    def losses(
        self,
        anchors: List[Boxes],
        pred_logits: List[Tensor],
        gt_labels: List[Tensor],
        pred_anchor_deltas: List[Tensor],
        gt_boxes: List[Tensor],
    ):
        """
        Args:
            anchors: per level, (R_l, 4) Boxes.
            pred_logits: per level, (N, R_l, num_classes).
            gt_labels: per image, (R,) class per anchor; num_classes = background,
                -1 = ignored.
            pred_anchor_deltas: per level, (N, R_l, 4).
            gt_boxes: per image, (R, 4) matched ground-truth box per anchor.

        Returns:
            {"loss_cls", "loss_box_reg"}, both divided by the smoothed number of
            foreground anchors.
        """
        num_images = len(gt_labels)
        gt_labels = torch.stack(gt_labels)  # (N, R)

        valid_mask = gt_labels >= 0
        pos_mask = valid_mask & (gt_labels != self.num_classes)
        num_pos_anchors = pos_mask.sum().item()
        get_event_storage().put_scalar("num_pos_anchors", num_pos_anchors / num_images)
        normalizer = self._ema_update("loss_normalizer", max(num_pos_anchors, 1), 100)

        # One-hot over num_classes + 1 with the background column dropped: background
        # anchors get all-zero targets.
        gt_labels_target = F.one_hot(gt_labels[valid_mask], num_classes=self.num_classes + 1)[:, :-1]
        loss_cls = sigmoid_focal_loss(
            cat(pred_logits, dim=1)[valid_mask],
            gt_labels_target.to(pred_logits[0].dtype),
            alpha=self.focal_loss_alpha,
            gamma=self.focal_loss_gamma,
            reduction="sum",
        )
        loss_box_reg = _dense_box_regression_loss(
            anchors,
            self.box2box_transform,
            pred_anchor_deltas,
            gt_boxes,
            pos_mask,
            box_reg_loss_type=self.box_reg_loss_type,
            smooth_l1_beta=self.smooth_l1_beta,
        )
        return {"loss_cls": loss_cls / normalizer, "loss_box_reg": loss_box_reg / normalizer}

    @torch.no_grad()
    def label_anchors(self, anchors: List[Boxes], gt_instances: List[Instances]):
        """
        Returns:
            gt_labels: per image, (R,) int64: the matched class, num_classes for
                background, -1 for ignored anchors.
            matched_gt_boxes: per image, (R, 4) matched ground-truth box (meaningless
                for background anchors).
        """
        anchors = Boxes.cat(anchors)
        gt_labels, matched_gt_boxes = [], []
        for gt_per_image in gt_instances:
            matched_idxs, anchor_labels = self.anchor_matcher(pairwise_iou(gt_per_image.gt_boxes, anchors))
            if len(gt_per_image) > 0:
                matched_gt_boxes_i = gt_per_image.gt_boxes.tensor[matched_idxs]
                gt_labels_i = gt_per_image.gt_classes[matched_idxs]
                gt_labels_i[anchor_labels == 0] = self.num_classes
                gt_labels_i[anchor_labels == -1] = -1
            else:
                matched_gt_boxes_i = torch.zeros_like(anchors.tensor)
                gt_labels_i = torch.full_like(matched_idxs, self.num_classes)
            gt_labels.append(gt_labels_i)
            matched_gt_boxes.append(matched_gt_boxes_i)
        return gt_labels, matched_gt_boxes

    def forward_inference(
        self, images: ImageList, features: List[Tensor], predictions: List[List[Tensor]]
    ) -> List[Instances]:
        pred_logits, pred_anchor_deltas = self._transpose_dense_predictions(predictions, [self.num_classes, 4])
        anchors = self.anchor_generator(features)
        results: List[Instances] = []
        for img_idx, image_size in enumerate(images.image_sizes):
            scores_per_image = [x[img_idx].sigmoid_() for x in pred_logits]
            deltas_per_image = [x[img_idx] for x in pred_anchor_deltas]
            results.append(self.inference_single_image(anchors, scores_per_image, deltas_per_image, image_size))
        return results

    def inference_single_image(
        self,
        anchors: List[Boxes],
        box_cls: List[Tensor],
        box_delta: List[Tensor],
        image_size: Tuple[int, int],
    ) -> Instances:
        """
        Args:
            anchors: per level, (R_l, 4) Boxes.
            box_cls: per level, (R_l, num_classes) probabilities.
            box_delta: per level, (R_l, 4) deltas.
            image_size: (h, w) of the image before padding.
        """
        return self._decode_and_nms(anchors, box_cls, box_delta, image_size)


class RetinaNetHead(nn.Module):
    """Two parallel conv towers over every level (weights shared across levels): one
    ends in ``cls_score`` (A * num_classes logits per position), the other in
    ``bbox_pred`` (A * 4 deltas)."""

    @configurable
    def __init__(
        self,
        *,
        input_shape: List[ShapeSpec],
        num_classes: int,
        num_anchors: int,
        conv_dims: List[int],
        norm: Union[str, Callable] = "",
        prior_prob: float = 0.01,
    ):
        """
        Args:
            input_shape: shapes of the input levels (all with the same channels).
            num_classes: number of foreground classes.
            num_anchors: anchors per position (the same on every level).
            conv_dims: output channels of each tower conv.
            norm: "" for none, "BN" / "SyncBN" for batch norm with separate statistics
                per level (CycleBatchNormList), or any other get_norm() name/callable,
                shared across levels.
            prior_prob: initial foreground probability of every logit, which keeps the
                focal loss from being swamped by background at the start of training.
        """
        super().__init__()
        if len(input_shape) == 0:
            raise ValueError("RetinaNetHead: input_shape must not be empty")
        if len(conv_dims) == 0:
            raise ValueError("RetinaNetHead: conv_dims must not be empty")
        self._num_features = len(input_shape)
        norm = self._level_norm(norm)

        in_dims = [input_shape[0].channels] + list(conv_dims[:-1])
        self.cls_subnet = self._tower(in_dims, conv_dims, norm)
        self.bbox_subnet = self._tower(in_dims, conv_dims, norm)
        self.cls_score = nn.Conv2d(conv_dims[-1], num_anchors * num_classes, kernel_size=3, stride=1, padding=1)
        self.bbox_pred = nn.Conv2d(conv_dims[-1], num_anchors * 4, kernel_size=3, stride=1, padding=1)

        for module in (self.cls_subnet, self.bbox_subnet, self.cls_score, self.bbox_pred):
            for layer in module.modules():
                if isinstance(layer, nn.Conv2d):
                    nn.init.normal_(layer.weight, mean=0, std=0.01)
                    nn.init.constant_(layer.bias, 0)
        # sigmoid(bias) == prior_prob
        nn.init.constant_(self.cls_score.bias, -math.log((1 - prior_prob) / prior_prob))

    def _level_norm(self, norm: Union[str, Callable]) -> Union[str, Callable]:
        """BN statistics differ between pyramid levels, so "BN"/"SyncBN" become one
        BatchNorm per level, cycled through as the shared tower sees each level."""
        if norm in ("BN", "SyncBN"):
            logger.info(f"Using domain-specific {norm} in RetinaNetHead with len={self._num_features}.")
            bn_class = nn.BatchNorm2d if norm == "BN" else nn.SyncBatchNorm
            num_levels = self._num_features

            def per_level_bn(channels: int) -> nn.Module:
                return CycleBatchNormList(length=num_levels, bn_class=bn_class, num_features=channels)

            return per_level_bn
        norm_name = str(type(get_norm(norm, 32)))
        if "BN" in norm_name:
            logger.warning(f"Shared BatchNorm (type={norm_name}) may not work well in RetinaNetHead.")
        return norm

    @staticmethod
    def _tower(in_dims: List[int], out_dims: List[int], norm: Union[str, Callable]) -> nn.Sequential:
        # Layout conv [, norm], relu per stage: the indices are part of the state_dict keys.
        layers: List[nn.Module] = []
        for in_channels, out_channels in zip(in_dims, out_dims):
            layers.append(nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1))
            if norm:
                layers.append(get_norm(norm, out_channels))
            layers.append(nn.ReLU())
        return nn.Sequential(*layers)

    @classmethod
    def from_config(cls, cfg, input_shape: List[ShapeSpec]):
        num_anchors = build_anchor_generator(cfg, input_shape).num_cell_anchors
        if len(set(num_anchors)) != 1:
            raise ValueError(f"RetinaNetHead: every level needs the same number of anchors, got {num_anchors}")
        return {
            "input_shape": input_shape,
            "num_classes": cfg.MODEL.RETINANET.NUM_CLASSES,
            "conv_dims": [input_shape[0].channels] * cfg.MODEL.RETINANET.NUM_CONVS,
            "prior_prob": cfg.MODEL.RETINANET.PRIOR_PROB,
            "norm": cfg.MODEL.RETINANET.NORM,
            "num_anchors": num_anchors[0],
        }

    def forward(self, features: List[Tensor]) -> Tuple[List[Tensor], List[Tensor]]:
        """
        Args:
            features: one (N, C, H_l, W_l) map per level.

        Returns:
            logits: per level, (N, A * num_classes, H_l, W_l).
            bbox_reg: per level, (N, A * 4, H_l, W_l).
        """
        if len(features) != self._num_features:
            raise ValueError(f"RetinaNetHead: expected {self._num_features} feature maps, got {len(features)}")
        logits = [self.cls_score(self.cls_subnet(f)) for f in features]
        bbox_reg = [self.bbox_pred(self.bbox_subnet(f)) for f in features]
        return logits, bbox_reg
