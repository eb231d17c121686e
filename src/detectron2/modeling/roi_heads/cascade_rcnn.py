"""Cascade R-CNN (Cai & Vasconcelos, 2018): box heads applied in stages, each stage
refining the previous stage's boxes and trained with a higher IoU threshold."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.autograd.function import Function

from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.structures import Boxes, ImageList, Instances, pairwise_iou
from detectron2.utils.events import get_event_storage

from ..box_regression import Box2BoxTransform
from ..matcher import Matcher
from ..poolers import ROIPooler
from .box_head import build_box_head
from .fast_rcnn import FastRCNNOutputLayers, fast_rcnn_inference
from .roi_heads import ROI_HEADS_REGISTRY, StandardROIHeads, _common_channels, _select_features

__all__ = ["CascadeROIHeads"]


class _ScaleGradient(Function):
    """Identity forward; multiplies the gradient by ``scale`` backward."""

    @staticmethod
    def forward(ctx, input, scale):
        ctx.scale = scale
        return input

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output * ctx.scale, None


@ROI_HEADS_REGISTRY.register()
class CascadeROIHeads(StandardROIHeads):
    """StandardROIHeads whose box branch has one head and predictor per stage
    (``box_head.{k}``, ``box_predictor.{k}``); the mask and keypoint branches are the
    standard ones."""

    @configurable
    def __init__(
        self,
        *,
        box_in_features: List[str],
        box_pooler: ROIPooler,
        box_heads: List[nn.Module],
        box_predictors: List[nn.Module],
        proposal_matchers: List[Matcher],
        **kwargs,
    ):
        """
        Args:
            box_in_features, box_pooler: as in :class:`StandardROIHeads`.
            box_heads: the box head of each stage.
            box_predictors: the box predictor of each stage; each decodes boxes with
                its own box2box_transform weights.
            proposal_matchers: the matcher (IoU threshold) of each stage.
            kwargs: the other arguments of :class:`StandardROIHeads`.
        """
        if "proposal_matcher" in kwargs:
            raise TypeError(
                "CascadeROIHeads takes 'proposal_matchers=' (one per stage) instead of 'proposal_matcher='"
            )
        num_stages = len(box_heads)
        if num_stages == 0 or len(box_predictors) != num_stages or len(proposal_matchers) != num_stages:
            raise ValueError(
                f"CascadeROIHeads: got {len(box_heads)} box_heads, {len(box_predictors)} box_predictors and "
                f"{len(proposal_matchers)} proposal_matchers; expected the same non-zero number of each"
            )
        # The first stage samples the proposals like any ROIHeads.
        kwargs["proposal_matcher"] = proposal_matchers[0]
        super().__init__(
            box_in_features=box_in_features,
            box_pooler=box_pooler,
            box_head=nn.ModuleList(box_heads),
            box_predictor=nn.ModuleList(box_predictors),
            **kwargs,
        )
        self.num_cascade_stages = num_stages
        self.proposal_matchers = proposal_matchers

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        ret.pop("proposal_matcher")
        return ret

    @classmethod
    def _init_box_head(cls, cfg, input_shape):
        in_features = cfg.MODEL.ROI_HEADS.IN_FEATURES
        pooler_resolution = cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION
        cascade_bbox_reg_weights = cfg.MODEL.ROI_BOX_CASCADE_HEAD.BBOX_REG_WEIGHTS
        cascade_ious = cfg.MODEL.ROI_BOX_CASCADE_HEAD.IOUS
        if len(cascade_bbox_reg_weights) != len(cascade_ious):
            raise ValueError(
                f"ROI_BOX_CASCADE_HEAD: {len(cascade_bbox_reg_weights)} BBOX_REG_WEIGHTS for {len(cascade_ious)} IOUS"
            )
        if not cfg.MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG:
            raise ValueError("CascadeROIHeads needs class-agnostic box regression (ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG)")
        if cascade_ious[0] != cfg.MODEL.ROI_HEADS.IOU_THRESHOLDS[0]:
            raise ValueError(
                f"ROI_BOX_CASCADE_HEAD.IOUS[0]={cascade_ious[0]} must equal "
                f"ROI_HEADS.IOU_THRESHOLDS[0]={cfg.MODEL.ROI_HEADS.IOU_THRESHOLDS[0]}"
            )

        box_pooler = ROIPooler(
            output_size=pooler_resolution,
            scales=tuple(1.0 / input_shape[k].stride for k in in_features),
            sampling_ratio=cfg.MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO,
            pooler_type=cfg.MODEL.ROI_BOX_HEAD.POOLER_TYPE,
        )
        pooled_shape = ShapeSpec(
            channels=_common_channels(input_shape, in_features), width=pooler_resolution, height=pooler_resolution
        )

        box_heads, box_predictors, proposal_matchers = [], [], []
        for match_iou, bbox_reg_weights in zip(cascade_ious, cascade_bbox_reg_weights):
            box_head = build_box_head(cfg, pooled_shape)
            box_heads.append(box_head)
            box_predictors.append(
                FastRCNNOutputLayers(
                    cfg, box_head.output_shape, box2box_transform=Box2BoxTransform(weights=bbox_reg_weights)
                )
            )
            proposal_matchers.append(Matcher([match_iou], [0, 1], allow_low_quality_matches=False))
        return {
            "box_in_features": in_features,
            "box_pooler": box_pooler,
            "box_heads": box_heads,
            "box_predictors": box_predictors,
            "proposal_matchers": proposal_matchers,
        }

    def forward(
        self,
        images: ImageList,
        features: Dict[str, torch.Tensor],
        proposals: List[Instances],
        targets: Optional[List[Instances]] = None,
    ) -> Tuple[List[Instances], Dict[str, torch.Tensor]]:
        """See :meth:`ROIHeads.forward`."""
        del images
        self._check_inputs(proposals, targets)
        if self.training:
            proposals = self.label_and_sample_proposals(proposals, targets)
            # Later stages re-match their refined boxes against the targets.
            losses = self._forward_box(features, proposals, targets)
            losses.update(self._forward_mask(features, proposals))
            losses.update(self._forward_keypoint(features, proposals))
            return proposals, losses
        pred_instances = self._forward_box(features, proposals)
        pred_instances = self.forward_with_given_boxes(features, pred_instances)
        return pred_instances, {}

    def _forward_box(
        self,
        features: Dict[str, torch.Tensor],
        proposals: List[Instances],
        targets: Optional[List[Instances]] = None,
    ):
        """
        Run the stages. Stage k > 0 takes the boxes predicted by stage k-1 as its
        proposals. Training returns the losses of every stage (``loss_cls_stage{k}``,
        ``loss_box_reg_stage{k}``); inference returns detections scored by the mean of
        the stages' class probabilities, with the last stage's boxes.
        """
        feature_list = _select_features(features, self.box_in_features)
        head_outputs = []  # (predictor, predictions, proposals) per stage
        prev_pred_boxes = None
        image_sizes = [x.image_size for x in proposals]
        for k in range(self.num_cascade_stages):
            if k > 0:
                proposals = self._create_proposals_from_boxes(prev_pred_boxes, image_sizes, proposals)
                if self.training:
                    proposals = self._match_and_label_boxes(proposals, k, targets)
            predictions = self._run_stage(feature_list, proposals, k)
            prev_pred_boxes = self.box_predictor[k].predict_boxes(predictions, proposals)
            head_outputs.append((self.box_predictor[k], predictions, proposals))

        if self.training:
            losses = {}
            storage = get_event_storage()
            for stage, (predictor, predictions, stage_proposals) in enumerate(head_outputs):
                with storage.name_scope(f"stage{stage}"):
                    stage_losses = predictor.losses(predictions, stage_proposals)
                losses.update({f"{name}_stage{stage}": v for name, v in stage_losses.items()})
            return losses

        scores_per_stage = [h[0].predict_probs(h[1], h[2]) for h in head_outputs]
        scores = [sum(list(per_image)) * (1.0 / self.num_cascade_stages) for per_image in zip(*scores_per_stage)]
        predictor, predictions, last_proposals = head_outputs[-1]
        boxes = predictor.predict_boxes(predictions, last_proposals)
        pred_instances, _ = fast_rcnn_inference(
            boxes,
            scores,
            image_sizes,
            predictor.test_score_thresh,
            predictor.test_nms_thresh,
            predictor.test_topk_per_image,
        )
        return pred_instances

    @torch.no_grad()
    def _match_and_label_boxes(
        self, proposals: List[Instances], stage: int, targets: List[Instances]
    ) -> List[Instances]:
        """Give every proposal of a later stage ``gt_classes`` and ``gt_boxes`` by the
        stage's IoU threshold (no sampling: all refined boxes are used)."""
        num_fg_samples, num_bg_samples = [], []
        for proposals_per_image, targets_per_image in zip(proposals, targets):
            match_quality_matrix = pairwise_iou(targets_per_image.gt_boxes, proposals_per_image.proposal_boxes)
            matched_idxs, proposal_labels = self.proposal_matchers[stage](match_quality_matrix)  # labels 0 or 1
            if len(targets_per_image) > 0:
                gt_classes = targets_per_image.gt_classes[matched_idxs]
                gt_classes[proposal_labels == 0] = self.num_classes
                gt_boxes = targets_per_image.gt_boxes[matched_idxs]
            else:
                gt_classes = torch.zeros_like(matched_idxs) + self.num_classes
                gt_boxes = Boxes(targets_per_image.gt_boxes.tensor.new_zeros((len(proposals_per_image), 4)))
            proposals_per_image.gt_classes = gt_classes
            proposals_per_image.gt_boxes = gt_boxes

            num_fg_samples.append(int((proposal_labels == 1).sum()))
            num_bg_samples.append(proposal_labels.numel() - num_fg_samples[-1])

        storage = get_event_storage()
        storage.put_scalar(f"stage{stage}/roi_head/num_fg_samples", sum(num_fg_samples) / len(num_fg_samples))
        storage.put_scalar(f"stage{stage}/roi_head/num_bg_samples", sum(num_bg_samples) / len(num_bg_samples))
        return proposals

    def _run_stage(self, features: List[torch.Tensor], proposals: List[Instances], stage: int):
        box_features = self.box_pooler(features, [x.proposal_boxes for x in proposals])
        # The stage losses are summed; scaling the gradient into the shared features by
        # 1/stages makes that equal to averaging them there (as the paper does) while
        # every head still gets its full gradient.
        if self.training:
            box_features = _ScaleGradient.apply(box_features, 1.0 / self.num_cascade_stages)
        box_features = self.box_head[stage](box_features)
        return self.box_predictor[stage](box_features)

    def _create_proposals_from_boxes(
        self, boxes: Sequence[torch.Tensor], image_sizes: List, prev_proposals: List[Instances]
    ) -> List[Instances]:
        """Proposals of the next stage: the predicted boxes, detached and clipped.
        Empty boxes are dropped in training only: at inference every stage must score
        the same boxes so that the scores can be averaged."""
        proposals = []
        for boxes_per_image, image_size, prev in zip(boxes, image_sizes, prev_proposals):
            boxes_per_image = Boxes(boxes_per_image.detach())
            boxes_per_image.clip(image_size)
            keep = None
            if self.training:
                keep = boxes_per_image.nonempty()
                boxes_per_image = boxes_per_image[keep]
            prop = Instances(image_size)
            prop.proposal_boxes = boxes_per_image
            if prev.has("objectness_logits"):
                logits = prev.objectness_logits
                prop.objectness_logits = logits if keep is None else logits[keep]
            proposals.append(prop)
        return proposals
