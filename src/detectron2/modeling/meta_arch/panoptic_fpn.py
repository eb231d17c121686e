"""Panoptic FPN (Kirillov et al., 2019): Mask R-CNN plus a semantic segmentation branch
on the same FPN, merged into one panoptic segmentation at inference."""
import logging
from typing import Dict, List, Tuple

import torch
from torch import Tensor, nn

from detectron2.config import configurable
from detectron2.structures import Instances

from ..postprocessing import detector_postprocess, sem_seg_postprocess
from .build import META_ARCH_REGISTRY
from .dense_detector import check_batched_inputs
from .rcnn import GeneralizedRCNN
from .semantic_seg import build_sem_seg_head, pad_sem_seg_targets

__all__ = ["PanopticFPN", "combine_semantic_and_instance_outputs"]

logger = logging.getLogger(__name__)


@META_ARCH_REGISTRY.register()
class PanopticFPN(GeneralizedRCNN):
    """GeneralizedRCNN with a semantic segmentation head; outputs "instances",
    "sem_seg" and their combination "panoptic_seg"."""

    @configurable
    def __init__(
        self,
        *,
        sem_seg_head: nn.Module,
        combine_overlap_thresh: float = 0.5,
        combine_stuff_area_thresh: float = 4096,
        combine_instances_score_thresh: float = 0.5,
        **kwargs,
    ):
        """
        Args:
            sem_seg_head: the semantic head (e.g. SemSegFPNHead), whose class 0 stands
                for all "thing" classes.
            combine_overlap_thresh: drop an instance whose mask overlaps already placed
                instances by more than this fraction of its area.
            combine_stuff_area_thresh: drop a stuff region smaller than this (pixels).
            combine_instances_score_thresh: ignore instances scoring below this.
            kwargs: the arguments of GeneralizedRCNN.
        """
        super().__init__(**kwargs)
        self.sem_seg_head = sem_seg_head
        self.combine_overlap_thresh = combine_overlap_thresh
        self.combine_stuff_area_thresh = combine_stuff_area_thresh
        self.combine_instances_score_thresh = combine_instances_score_thresh

    @classmethod
    def from_config(cls, cfg):
        ret = super().from_config(cfg)
        combine = cfg.MODEL.PANOPTIC_FPN.COMBINE
        ret.update(
            {
                "combine_overlap_thresh": combine.OVERLAP_THRESH,
                "combine_stuff_area_thresh": combine.STUFF_AREA_LIMIT,
                "combine_instances_score_thresh": combine.INSTANCES_CONFIDENCE_THRESH,
            }
        )
        ret["sem_seg_head"] = build_sem_seg_head(cfg, ret["backbone"].output_shape())
        if not combine.ENABLED:
            logger.warning(
                "PANOPTIC_FPN.COMBINED.ENABLED is no longer used. "
                "model.inference(do_postprocess=) should be used to toggle postprocessing."
            )
        weight = cfg.MODEL.PANOPTIC_FPN.INSTANCE_LOSS_WEIGHT
        if weight != 1.0:
            logger.warning("PANOPTIC_FPN.INSTANCE_LOSS_WEIGHT should be replaced by weights on each ROI head.")
            _scale_roi_loss_weights(ret["roi_heads"], weight)
        return ret

    def forward(self, batched_inputs: List[Dict[str, Tensor]]):
        """
        Args:
            batched_inputs: one dict per image with "image"; in training also
                "instances" (gt_boxes, gt_classes, gt_masks) and "sem_seg" (H, W)
                labels; optional "height"/"width" of the output.

        Returns:
            training: dict of losses (loss_sem_seg plus the RPN and ROI head losses).
            Inference: see :meth:`inference`.
        """
        if not self.training:
            return self.inference(batched_inputs)
        check_batched_inputs(batched_inputs, "PanopticFPN")
        for key in ("sem_seg", "instances"):
            if key not in batched_inputs[0]:
                raise ValueError(f"PanopticFPN: training needs '{key}' in every input dict")
        images = self.preprocess_image(batched_inputs)
        features = self.backbone(images.tensor)

        gt_sem_seg = [x["sem_seg"].to(self.device) for x in batched_inputs]
        gt_sem_seg = pad_sem_seg_targets(gt_sem_seg, self.backbone, self.sem_seg_head.ignore_value)
        _, sem_seg_losses = self.sem_seg_head(features, gt_sem_seg)

        gt_instances = [x["instances"].to(self.device) for x in batched_inputs]
        proposals, proposal_losses = self.proposal_generator(images, features, gt_instances)
        _, detector_losses = self.roi_heads(images, features, proposals, gt_instances)

        losses = dict(sem_seg_losses)
        losses.update(proposal_losses)
        losses.update(detector_losses)
        return losses

    def inference(self, batched_inputs: List[Dict[str, Tensor]], do_postprocess: bool = True):
        """
        Returns:
            with do_postprocess: one dict per image with "instances" and "sem_seg"
            (rescaled to "height" x "width") and "panoptic_seg", a tuple
            (int32 (H, W) segment ids, list of segment info dicts), see
            :func:`combine_semantic_and_instance_outputs`.
            Otherwise: (list of Instances, (N, C, H, W) semantic logits) at the padded
            network input resolution.
        """
        check_batched_inputs(batched_inputs, "PanopticFPN")
        images = self.preprocess_image(batched_inputs)
        features = self.backbone(images.tensor)
        sem_seg_results, _ = self.sem_seg_head(features, None)
        proposals, _ = self.proposal_generator(images, features, None)
        detector_results, _ = self.roi_heads(images, features, proposals, None)
        if not do_postprocess:
            return detector_results, sem_seg_results

        processed_results = []
        for sem_seg_result, detector_result, input_per_image, image_size in zip(
            sem_seg_results, detector_results, batched_inputs, images.image_sizes
        ):
            height = input_per_image.get("height", image_size[0])
            width = input_per_image.get("width", image_size[1])
            sem_seg_r = sem_seg_postprocess(sem_seg_result, image_size, height, width)
            detector_r = detector_postprocess(detector_result, height, width)
            panoptic_r = combine_semantic_and_instance_outputs(
                detector_r,
                sem_seg_r.argmax(dim=0),
                self.combine_overlap_thresh,
                self.combine_stuff_area_thresh,
                self.combine_instances_score_thresh,
            )
            processed_results.append({"sem_seg": sem_seg_r, "instances": detector_r, "panoptic_seg": panoptic_r})
        return processed_results


def _scale_roi_loss_weights(roi_heads: nn.Module, weight: float) -> None:
    """Fold the deprecated INSTANCE_LOSS_WEIGHT into the box and mask heads' weights."""

    def scaled(w):
        return {k: v * weight for k, v in w.items()} if isinstance(w, dict) else w * weight

    roi_heads.box_predictor.loss_weight = scaled(roi_heads.box_predictor.loss_weight)
    roi_heads.mask_head.loss_weight = scaled(roi_heads.mask_head.loss_weight)


def combine_semantic_and_instance_outputs(
    instance_results: Instances,
    semantic_results: Tensor,
    overlap_threshold: float,
    stuff_area_thresh: float,
    instances_score_thresh: float,
) -> Tuple[Tensor, List[Dict]]:
    """Merge instance and semantic predictions into a panoptic segmentation (the
    heuristic of the Panoptic FPN paper): instances are pasted by decreasing score,
    skipping those below ``instances_score_thresh`` or overlapping already pasted
    ones by more than ``overlap_threshold`` of their area; each stuff class of the
    semantic map then fills the still empty pixels if it covers at least
    ``stuff_area_thresh`` of them. Semantic class 0 means "thing" and is never stuff.

    Args:
        instance_results: with pred_masks (R, H, W), scores (R,) and pred_classes (R,).
        semantic_results: (H, W) integer semantic labels.

    Returns:
        panoptic_seg: (H, W) int32, 0 for unassigned pixels, else a segment id from 1.
        segments_info: per segment, a dict with "id", "isthing", "category_id" and
            "score" + "instance_id" (things) or "area" (stuff).
    """
    if semantic_results.dim() != 2 or semantic_results.is_floating_point():
        raise ValueError(
            "combine_semantic_and_instance_outputs: semantic_results must be an (H, W) integer label map, "
            f"got {semantic_results.dtype} of shape {tuple(semantic_results.shape)}"
        )
    masks = instance_results.pred_masks
    if len(instance_results) > 0 and tuple(masks.shape[-2:]) != tuple(semantic_results.shape):
        raise ValueError(
            f"combine_semantic_and_instance_outputs: pred_masks of size {tuple(masks.shape[-2:])} do not match "
            f"semantic_results of size {tuple(semantic_results.shape)}"
        )
    panoptic_seg = torch.zeros_like(semantic_results, dtype=torch.int32)
    segments_info: List[Dict] = []
    masks = masks.to(dtype=torch.bool, device=panoptic_seg.device)

    for inst_id in torch.argsort(-instance_results.scores, stable=True):
        score = instance_results.scores[inst_id].item()
        if score < instances_score_thresh:
            break  # sorted: all the rest score lower
        mask = masks[inst_id]
        mask_area = mask.sum().item()
        if mask_area == 0:
            continue
        taken = panoptic_seg > 0
        overlap_area = (mask & taken).sum().item()
        if overlap_area / mask_area > overlap_threshold:
            continue
        if overlap_area > 0:
            mask = mask & ~taken
        segment_id = len(segments_info) + 1
        panoptic_seg[mask] = segment_id
        segments_info.append(
            {
                "id": segment_id,
                "isthing": True,
                "score": score,
                "category_id": instance_results.pred_classes[inst_id].item(),
                "instance_id": inst_id.item(),
            }
        )

    for label in torch.unique(semantic_results).cpu().tolist():
        if label == 0:
            continue
        mask = (semantic_results == label) & (panoptic_seg == 0)
        mask_area = mask.sum().item()
        if mask_area < stuff_area_thresh:
            continue
        segment_id = len(segments_info) + 1
        panoptic_seg[mask] = segment_id
        segments_info.append({"id": segment_id, "isthing": False, "category_id": label, "area": mask_area})
    return panoptic_seg, segments_info
