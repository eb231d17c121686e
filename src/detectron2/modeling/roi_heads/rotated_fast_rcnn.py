"""ROI heads for rotated boxes (x_ctr, y_ctr, w, h, angle in degrees): rotated IoU
matching, ROIAlignRotated pooling, Box2BoxTransformRotated deltas, rotated NMS."""
from typing import List, Tuple

import torch

from detectron2.config import configurable
from detectron2.layers import ShapeSpec, batched_nms_rotated
from detectron2.structures import Instances, RotatedBoxes, pairwise_iou_rotated

from ..box_regression import Box2BoxTransformRotated
from ..poolers import ROIPooler
from .box_head import build_box_head
from .fast_rcnn import (
    FastRCNNOutputLayers,
    _check_list_lengths,
    _check_predictions,
    _drop_non_finite,
    _filter_by_score,
)
from .roi_heads import ROI_HEADS_REGISTRY, StandardROIHeads, _common_channels

__all__ = ["RROIHeads", "RotatedFastRCNNOutputLayers", "fast_rcnn_inference_rotated"]


def fast_rcnn_inference_rotated(
    boxes: List[torch.Tensor],
    scores: List[torch.Tensor],
    image_shapes: List[Tuple[int, int]],
    score_thresh: float,
    nms_thresh: float,
    topk_per_image: int,
) -> Tuple[List[Instances], List[torch.Tensor]]:
    """:func:`fast_rcnn_inference` for rotated boxes: ``boxes`` are per image (Ri, K*5)
    or (Ri, 5), the NMS is rotated, and ``pred_boxes`` are RotatedBoxes."""
    _check_list_lengths(boxes=boxes, scores=scores, image_shapes=image_shapes)
    results = [
        fast_rcnn_inference_single_image_rotated(b, s, shape, score_thresh, nms_thresh, topk_per_image)
        for b, s, shape in zip(boxes, scores, image_shapes)
    ]
    return [r[0] for r in results], [r[1] for r in results]


@torch.no_grad()
def fast_rcnn_inference_single_image_rotated(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    image_shape: Tuple[int, int],
    score_thresh: float,
    nms_thresh: float,
    topk_per_image: int,
) -> Tuple[Instances, torch.Tensor]:
    """:func:`fast_rcnn_inference_rotated` for one image."""
    box_dim = 5
    _check_predictions(boxes, scores, box_dim)
    boxes, scores = _drop_non_finite(boxes, scores)
    num_bbox_reg_classes = boxes.shape[1] // box_dim
    clipped = RotatedBoxes(boxes.reshape(-1, box_dim))
    clipped.clip(image_shape)  # only nearly axis-aligned boxes are clipped
    boxes = clipped.tensor.view(-1, num_bbox_reg_classes, box_dim)

    boxes, scores, filter_inds = _filter_by_score(boxes, scores, score_thresh, box_dim)
    keep = batched_nms_rotated(boxes, scores, filter_inds[:, 1], nms_thresh)
    if topk_per_image >= 0:
        keep = keep[:topk_per_image]
    boxes, scores, filter_inds = boxes[keep], scores[keep], filter_inds[keep]

    result = Instances(image_shape)
    result.pred_boxes = RotatedBoxes(boxes)
    result.scores = scores
    result.pred_classes = filter_inds[:, 1]
    return result, filter_inds[:, 0]


class RotatedFastRCNNOutputLayers(FastRCNNOutputLayers):
    """FastRCNNOutputLayers predicting 5 deltas per box (Box2BoxTransformRotated), with
    rotated inference."""

    @classmethod
    def _box2box_transform_from_config(cls, cfg):
        return Box2BoxTransformRotated(weights=cfg.MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS)

    def inference(self, predictions, proposals: List[Instances]) -> Tuple[List[Instances], List[torch.Tensor]]:
        """Rotated detections per image, see :func:`fast_rcnn_inference_rotated`."""
        boxes = self.predict_boxes(predictions, proposals)
        scores = self.predict_probs(predictions, proposals)
        image_shapes = [x.image_size for x in proposals]
        return fast_rcnn_inference_rotated(
            boxes, scores, image_shapes, self.test_score_thresh, self.test_nms_thresh, self.test_topk_per_image
        )


@ROI_HEADS_REGISTRY.register()
class RROIHeads(StandardROIHeads):
    """StandardROIHeads for rotated proposals and gt (RotatedBoxes): box branch only."""

    @configurable
    def __init__(self, **kwargs):
        """Arguments as :class:`StandardROIHeads`; mask, keypoint and
        train_on_pred_boxes are not supported."""
        super().__init__(**kwargs)
        if self.mask_on or self.keypoint_on:
            raise ValueError("RROIHeads has no mask or keypoint branch")
        if self.train_on_pred_boxes:
            raise ValueError("RROIHeads does not support train_on_pred_boxes")

    @classmethod
    def _init_box_head(cls, cfg, input_shape):
        in_features = cfg.MODEL.ROI_HEADS.IN_FEATURES
        pooler_resolution = cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION
        pooler_type = cfg.MODEL.ROI_BOX_HEAD.POOLER_TYPE
        if pooler_type != "ROIAlignRotated":
            raise ValueError(f"RROIHeads needs ROI_BOX_HEAD.POOLER_TYPE 'ROIAlignRotated', got {pooler_type!r}")
        box_pooler = ROIPooler(
            output_size=pooler_resolution,
            scales=tuple(1.0 / input_shape[k].stride for k in in_features),
            sampling_ratio=cfg.MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO,
            pooler_type=pooler_type,
        )
        box_head = build_box_head(
            cfg,
            ShapeSpec(
                channels=_common_channels(input_shape, in_features),
                height=pooler_resolution,
                width=pooler_resolution,
            ),
        )
        box_predictor = RotatedFastRCNNOutputLayers(cfg, box_head.output_shape)
        return {
            "box_in_features": in_features,
            "box_pooler": box_pooler,
            "box_head": box_head,
            "box_predictor": box_predictor,
        }

    def _match_quality(self, gt_boxes, proposal_boxes) -> torch.Tensor:
        return pairwise_iou_rotated(gt_boxes, proposal_boxes)
