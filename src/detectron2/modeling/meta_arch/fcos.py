"""FCOS (Tian et al., "FCOS: Fully Convolutional One-Stage Object Detection", 2019), in
the anchor-point form of its 2020 journal version: centre sampling, GIoU box loss,
centerness branch on the box tower."""
from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from detectron2.layers import ShapeSpec
from detectron2.structures import Boxes, ImageList, Instances, pairwise_point_box_distance
from detectron2.utils.events import get_event_storage

from ..anchor_generator import DefaultAnchorGenerator
from ..backbone import Backbone
from ..box_regression import Box2BoxTransformLinear, _dense_box_regression_loss
from .dense_detector import DenseDetector, sigmoid_focal_loss
from .retinanet import RetinaNetHead, check_gt_instances

__all__ = ["FCOS", "FCOSHead"]


class FCOS(DenseDetector):
    """FCOS: one anchor point per position, assigned to the smallest ground-truth box
    that contains it, whose centre is near it, and whose size fits the point's level."""

    def __init__(
        self,
        *,
        backbone: Backbone,
        head: nn.Module,
        head_in_features: Optional[List[str]] = None,
        box2box_transform=None,
        num_classes: int,
        center_sampling_radius: float = 1.5,
        focal_loss_alpha: float = 0.25,
        focal_loss_gamma: float = 2.0,
        test_score_thresh: float = 0.2,
        test_topk_candidates: int = 1000,
        test_nms_thresh: float = 0.6,
        max_detections_per_image: int = 100,
        pixel_mean: Tuple[float, ...],
        pixel_std: Tuple[float, ...],
    ):
        """
        Args:
            backbone, head, head_in_features, pixel_mean, pixel_std: see DenseDetector;
                the head returns (logits, deltas, centerness), each a list over levels.
            box2box_transform: defaults to Box2BoxTransformLinear(normalize_by_size=True),
                i.e. side distances divided by the level's stride.
            num_classes: number of foreground classes.
            center_sampling_radius: a point is a positive candidate only within this
                many strides of a ground-truth box centre.
            focal_loss_alpha, focal_loss_gamma: focal loss parameters.
            test_score_thresh, test_topk_candidates, test_nms_thresh,
            max_detections_per_image: inference filtering, as in RetinaNet.
        """
        super().__init__(backbone, head, head_in_features, pixel_mean=pixel_mean, pixel_std=pixel_std)
        if num_classes <= 0:
            raise ValueError(f"FCOS: num_classes must be positive, got {num_classes}")
        self.num_classes = num_classes

        # Each anchor point is represented by a box as large as its level's stride.
        feature_shapes = backbone.output_shape()
        fpn_strides = [feature_shapes[k].stride for k in self.head_in_features]
        self.anchor_generator = DefaultAnchorGenerator(
            sizes=[[k] for k in fpn_strides], aspect_ratios=[1.0], strides=fpn_strides
        )
        if box2box_transform is None:
            box2box_transform = Box2BoxTransformLinear(normalize_by_size=True)
        self.box2box_transform = box2box_transform
        self.center_sampling_radius = float(center_sampling_radius)

        self.focal_loss_alpha = focal_loss_alpha
        self.focal_loss_gamma = focal_loss_gamma

        self.test_score_thresh = test_score_thresh
        self.test_topk_candidates = test_topk_candidates
        self.test_nms_thresh = test_nms_thresh
        self.max_detections_per_image = max_detections_per_image

    def forward_training(
        self, images: ImageList, features: List[Tensor], predictions, gt_instances: List[Instances]
    ):
        check_gt_instances(gt_instances, "FCOS")
        pred_logits, pred_anchor_deltas, pred_centerness = self._transpose_dense_predictions(
            predictions, [self.num_classes, 4, 1]
        )
        anchors = self.anchor_generator(features)
        gt_labels, gt_boxes = self.label_anchors(anchors, gt_instances)
        return self.losses(anchors, pred_logits, gt_labels, pred_anchor_deltas, gt_boxes, pred_centerness)

    @torch.no_grad()
    def _match_anchors(self, gt_boxes: Boxes, anchors: List[Boxes]) -> Tensor:
        """
        Returns:
            (M, R) float: 0 where ground truth m cannot take anchor point r, otherwise
            1e8 - area(m), so that a max over m picks the smallest eligible box.
        """
        num_anchors_per_level = [len(x) for x in anchors]
        anchors = Boxes.cat(anchors)
        anchor_centers = anchors.get_centers()  # (R, 2)
        anchor_sizes = anchors.tensor[:, 2] - anchors.tensor[:, 0]  # (R,): the strides

        # Level l takes boxes whose largest side distance is in (4, 8) strides; the
        # finest level has no lower and the coarsest no upper bound.
        lower_bound = anchor_sizes * 4
        lower_bound[: num_anchors_per_level[0]] = 0
        upper_bound = anchor_sizes * 8
        upper_bound[-num_anchors_per_level[-1]:] = float("inf")

        # Centre sampling: within center_sampling_radius strides of the box centre.
        gt_centers = gt_boxes.get_centers()
        center_dists = (anchor_centers[None, :, :] - gt_centers[:, None, :]).abs_()
        eligible = center_dists.max(dim=2).values < self.center_sampling_radius * anchor_sizes[None, :]

        side_dists = pairwise_point_box_distance(anchor_centers, gt_boxes).permute(1, 0, 2)  # (M, R, 4)
        eligible &= side_dists.min(dim=2).values > 0  # inside the box
        largest_side = side_dists.max(dim=2).values
        eligible &= (largest_side > lower_bound[None, :]) & (largest_side < upper_bound[None, :])

        quality = eligible.to(torch.float32)
        quality *= 1e8 - gt_boxes.area()[:, None]
        return quality

    @torch.no_grad()
    def label_anchors(self, anchors: List[Boxes], gt_instances: List[Instances]):
        """
        Returns:
            gt_labels: per image, (R,) matched class or num_classes (background).
            matched_gt_boxes: per image, (R, 4) matched box (zeros / arbitrary for
                background points).
        """
        gt_labels, matched_gt_boxes = [], []
        for inst in gt_instances:
            if len(inst) > 0:
                quality = self._match_anchors(inst.gt_boxes, anchors)
                best_quality, matched_idxs = quality.max(dim=0)
                # The same as Matcher(thresholds=[1e-5], labels=[0, 1]).
                matched_idxs[best_quality < 1e-5] = -1
                safe_idxs = matched_idxs.clamp(min=0)
                matched_gt_boxes_i = inst.gt_boxes.tensor[safe_idxs]
                gt_labels_i = inst.gt_classes[safe_idxs]
                gt_labels_i[matched_idxs < 0] = self.num_classes
            else:
                num_anchors = sum(len(x) for x in anchors)
                device = anchors[0].tensor.device
                matched_gt_boxes_i = torch.zeros((num_anchors, 4), device=device)
                gt_labels_i = torch.full((num_anchors,), self.num_classes, dtype=torch.int64, device=device)
            gt_labels.append(gt_labels_i)
            matched_gt_boxes.append(matched_gt_boxes_i)
        return gt_labels, matched_gt_boxes

    def losses(
        self,
        anchors: List[Boxes],
        pred_logits: List[Tensor],
        gt_labels: List[Tensor],
        pred_anchor_deltas: List[Tensor],
        gt_boxes: List[Tensor],
        pred_centerness: List[Tensor],
    ):
        """
        Returns:
            {"loss_fcos_cls", "loss_fcos_loc", "loss_fcos_ctr"}, each divided by the
            smoothed number of foreground points.
        """
        num_images = len(gt_labels)
        gt_labels = torch.stack(gt_labels)  # (N, R)

        pos_mask = (gt_labels >= 0) & (gt_labels != self.num_classes)
        num_pos_anchors = pos_mask.sum().item()
        get_event_storage().put_scalar("num_pos_anchors", num_pos_anchors / num_images)
        normalizer = self._ema_update("loss_normalizer", max(num_pos_anchors, 1), 300)

        gt_labels_target = F.one_hot(gt_labels, num_classes=self.num_classes + 1)[:, :, :-1]
        loss_cls = sigmoid_focal_loss(
            torch.cat(pred_logits, dim=1),
            gt_labels_target.to(pred_logits[0].dtype),
            alpha=self.focal_loss_alpha,
            gamma=self.focal_loss_gamma,
            reduction="sum",
        )
        loss_box_reg = _dense_box_regression_loss(
            anchors, self.box2box_transform, pred_anchor_deltas, gt_boxes, pos_mask, box_reg_loss_type="giou"
        )

        ctrness_targets = self.compute_ctrness_targets(anchors, gt_boxes)  # (N, R)
        pred_centerness = torch.cat(pred_centerness, dim=1).squeeze(dim=2)  # (N, R)
        ctrness_loss = F.binary_cross_entropy_with_logits(
            pred_centerness[pos_mask], ctrness_targets[pos_mask], reduction="sum"
        )
        return {
            "loss_fcos_cls": loss_cls / normalizer,
            "loss_fcos_loc": loss_box_reg / normalizer,
            "loss_fcos_ctr": ctrness_loss / normalizer,
        }

    def compute_ctrness_targets(self, anchors: List[Boxes], gt_boxes: List[Tensor]) -> Tensor:
        """Centerness sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b)) of each anchor
        point in its matched box, (N, R); only meaningful for foreground points."""
        anchors = Boxes.cat(anchors).tensor
        if len(gt_boxes) == 0:
            return anchors.new_zeros((0, anchors.shape[0]))
        reg_targets = torch.stack([self.box2box_transform.get_deltas(anchors, m) for m in gt_boxes], dim=0)
        left_right = reg_targets[:, :, [0, 2]]
        top_bottom = reg_targets[:, :, [1, 3]]
        ctrness = (left_right.min(dim=-1).values / left_right.max(dim=-1).values) * (
            top_bottom.min(dim=-1).values / top_bottom.max(dim=-1).values
        )
        return torch.sqrt(ctrness)

    def forward_inference(
        self, images: ImageList, features: List[Tensor], predictions: List[List[Tensor]]
    ) -> List[Instances]:
        pred_logits, pred_anchor_deltas, pred_centerness = self._transpose_dense_predictions(
            predictions, [self.num_classes, 4, 1]
        )
        anchors = self.anchor_generator(features)
        results: List[Instances] = []
        for img_idx, image_size in enumerate(images.image_sizes):
            # Score = geometric mean of class probability and centerness (eq. 4 of the
            # journal version, arXiv:2006.09214).
            scores_per_image = [
                torch.sqrt(x[img_idx].sigmoid_() * y[img_idx].sigmoid_())
                for x, y in zip(pred_logits, pred_centerness)
            ]
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
        """Same as RetinaNet.inference_single_image, with FCOS's thresholds."""
        return self._decode_and_nms(anchors, box_cls, box_delta, image_size)


class FCOSHead(RetinaNetHead):
    """RetinaNetHead with one anchor per position and a centerness logit predicted
    from the box tower. No per-level learnable scale: regression targets are already
    normalized by stride."""

    def __init__(self, *, input_shape: List[ShapeSpec], conv_dims: List[int], **kwargs):
        super().__init__(input_shape=input_shape, conv_dims=conv_dims, num_anchors=1, **kwargs)
        self._num_features = len(input_shape)
        self.ctrness = nn.Conv2d(conv_dims[-1], 1, kernel_size=3, stride=1, padding=1)
        nn.init.normal_(self.ctrness.weight, std=0.01)
        nn.init.constant_(self.ctrness.bias, 0)

    def forward(self, features: List[Tensor]) -> Tuple[List[Tensor], List[Tensor], List[Tensor]]:
        """Returns per-level lists of logits (N, K, H, W), deltas (N, 4, H, W) and
        centerness logits (N, 1, H, W)."""
        if len(features) != self._num_features:
            raise ValueError(f"FCOSHead: expected {self._num_features} feature maps, got {len(features)}")
        logits, bbox_reg, ctrness = [], [], []
        for feature in features:
            logits.append(self.cls_score(self.cls_subnet(feature)))
            bbox_feature = self.bbox_subnet(feature)
            bbox_reg.append(self.bbox_pred(bbox_feature))
            ctrness.append(self.ctrness(bbox_feature))
        return logits, bbox_reg, ctrness
