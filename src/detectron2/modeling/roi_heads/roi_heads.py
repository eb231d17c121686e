"""ROI heads: per-region computation of R-CNN models on top of the proposals: proposal
sampling during training, and the box, mask and keypoint branches."""
import inspect
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from detectron2.config import configurable
from detectron2.layers import ShapeSpec, nonzero_tuple
from detectron2.structures import BitMasks, Boxes, ImageList, Instances, pairwise_iou
from detectron2.utils.events import get_event_storage
from detectron2.utils.registry import Registry

from ..backbone.resnet import BottleneckBlock, ResNet
from ..batched_matching import batch_matching_on, match_images, row_mask
from ..matcher import Matcher
from ..poolers import ROIPooler
from ..proposal_generator.proposal_utils import add_ground_truth_to_proposals
from ..sampling import subsample_labels, subsample_labels_batched
from .box_head import build_box_head
from .fast_rcnn import FastRCNNOutputLayers
from .keypoint_head import build_keypoint_head
from .mask_head import build_mask_head

__all__ = [
    "ROI_HEADS_REGISTRY",
    "build_roi_heads",
    "ROIHeads",
    "Res5ROIHeads",
    "StandardROIHeads",
    "select_foreground_proposals",
    "select_proposals_with_visible_keypoints",
]

ROI_HEADS_REGISTRY = Registry("ROI_HEADS")
ROI_HEADS_REGISTRY.__doc__ = """
Registry for ROI heads of R-CNN models: they take backbone features and proposals and
make the per-region predictions. A registered class is called as
``cls(cfg, input_shape)``, where input_shape maps feature names to ShapeSpec.
"""


def build_roi_heads(cfg, input_shape: Dict[str, ShapeSpec]) -> nn.Module:
    """Build the ROI heads named by ``cfg.MODEL.ROI_HEADS.NAME``."""
    return ROI_HEADS_REGISTRY.get(cfg.MODEL.ROI_HEADS.NAME)(cfg, input_shape)


def select_foreground_proposals(
    proposals: List[Instances], bg_label: int
) -> Tuple[List[Instances], List[torch.Tensor]]:
    """
    Keep the foreground proposals (``gt_classes`` neither -1 nor ``bg_label``).

    Returns:
        the foreground proposals of each image, and per image the (Ri,) bool mask of
        the proposals that were kept.
    """
    if not isinstance(proposals, (list, tuple)) or not all(isinstance(p, Instances) for p in proposals):
        raise TypeError("select_foreground_proposals: 'proposals' must be a list of Instances")
    fg_selection_masks = []
    for proposals_per_image in proposals:
        if not proposals_per_image.has("gt_classes"):
            raise ValueError("select_foreground_proposals: the proposals need a 'gt_classes' field")
        gt_classes = proposals_per_image.gt_classes
        fg_selection_masks.append((gt_classes != -1) & (gt_classes != bg_label))
    if len(proposals) == 0:
        return [], []
    # One nonzero over all images and one host copy of the counts, not a nonzero per image.
    counts = torch.stack([m.sum() for m in fg_selection_masks]).tolist()
    all_idxs = nonzero_tuple(torch.cat(fg_selection_masks))[0]
    fg_proposals, start = [], 0
    for proposals_per_image, fg_idxs, mask in zip(proposals, all_idxs.split(counts), fg_selection_masks):
        fg_proposals.append(proposals_per_image[fg_idxs - start])
        start += mask.numel()
    return fg_proposals, fg_selection_masks


def select_proposals_with_visible_keypoints(proposals: List[Instances]) -> List[Instances]:
    """
    Keep the proposals whose box contains at least one visible gt keypoint (of the
    instance they are matched to): the others give no keypoint loss.

    Args:
        proposals: per image, proposals with ``proposal_boxes`` and ``gt_keypoints``.
    """
    ret = []
    all_num_fg = []
    for proposals_per_image in proposals:
        if len(proposals_per_image) == 0:
            ret.append(proposals_per_image)
            continue
        gt_keypoints = proposals_per_image.gt_keypoints.tensor  # (R, K, 3)
        vis_mask = gt_keypoints[:, :, 2] >= 1
        xs, ys = gt_keypoints[:, :, 0], gt_keypoints[:, :, 1]
        boxes = proposals_per_image.proposal_boxes.tensor.unsqueeze(dim=1)  # (R, 1, 4)
        kp_in_box = (xs >= boxes[:, :, 0]) & (xs <= boxes[:, :, 2]) & (ys >= boxes[:, :, 1]) & (ys <= boxes[:, :, 3])
        selection_idxs = nonzero_tuple((kp_in_box & vis_mask).any(dim=1))[0]
        all_num_fg.append(selection_idxs.numel())
        ret.append(proposals_per_image[selection_idxs])

    if all_num_fg:
        get_event_storage().put_scalar("keypoint_head/num_fg_samples", np.mean(all_num_fg))
    return ret


def _set_gt_fields_of_samples(proposals: Instances, targets: Instances, matched_gt: torch.Tensor) -> None:
    """Give each sampled proposal the gt_* fields of its matched gt (not those it has).
    Bit masks are gathered lazily (BitMasks.gather): copying a full-image mask per
    proposal costs gigabytes a batch, while the mask loss reads only the foreground's
    crops, straight from the gt masks."""
    for name, value in targets.get_fields().items():
        if name.startswith("gt_") and not proposals.has(name):
            proposals.set(name, value.gather(matched_gt) if type(value) is BitMasks else value[matched_gt])


def _select_features(features: Dict[str, torch.Tensor], names: List[str]) -> List[torch.Tensor]:
    for f in names:  # a loop: TorchScript has no comprehension with `if`
        if f not in features:
            raise KeyError(f"ROI heads need the feature {f}; the backbone gave {list(features.keys())}")
    return [features[f] for f in names]


def _common_channels(input_shape: Dict[str, ShapeSpec], in_features: List[str]) -> int:
    """The channel count shared by all ``in_features`` (one head runs on all levels)."""
    channels = {input_shape[f].channels for f in in_features}
    if len(channels) != 1:
        raise ValueError(f"ROI heads: the features {in_features} must have equal channels, got {channels}")
    return channels.pop()


class ROIHeads(nn.Module):
    """Base class of ROI heads. It owns the training-time proposal sampling: match
    proposals to ground truth and sample a fixed number per image with a fixed
    foreground fraction (:meth:`label_and_sample_proposals`)."""

    @configurable
    def __init__(
        self,
        *,
        num_classes: int,
        batch_size_per_image: int,
        positive_fraction: float,
        proposal_matcher: Matcher,
        proposal_append_gt: bool = True,
    ):
        """
        Args:
            num_classes: number of foreground classes (background is class num_classes).
            batch_size_per_image: proposals sampled per image for training.
            positive_fraction: the foreground fraction of the sampled proposals.
            proposal_matcher: labels proposals foreground (1), background (0) or
                ignored (-1) by their IoU with the ground truth.
            proposal_append_gt: add the gt boxes to the proposals before sampling.
        """
        super().__init__()
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction
        self.num_classes = num_classes
        self.proposal_matcher = proposal_matcher
        self.proposal_append_gt = proposal_append_gt

    @classmethod
    def from_config(cls, cfg):
        heads = cfg.MODEL.ROI_HEADS
        return {
            "batch_size_per_image": heads.BATCH_SIZE_PER_IMAGE,
            "positive_fraction": heads.POSITIVE_FRACTION,
            "num_classes": heads.NUM_CLASSES,
            "proposal_append_gt": heads.PROPOSAL_APPEND_GT,
            # Low-quality matches are already in the proposals (RPN); not added here.
            "proposal_matcher": Matcher(heads.IOU_THRESHOLDS, heads.IOU_LABELS, allow_low_quality_matches=False),
        }

    def _sample_proposals(
        self, matched_idxs: torch.Tensor, matched_labels: torch.Tensor, gt_classes: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """
        Sample ``batch_size_per_image`` proposals of one image.

        Args:
            matched_idxs: (R,) index of the gt matched to each proposal.
            matched_labels: (R,) matcher label: 1 foreground, 0 background, -1 ignore.
            gt_classes: (G,) classes of the gt instances.

        Returns:
            the indices of the sampled proposals, and their classes (background =
            num_classes).
        """
        gt_classes = self._classes_of_matches(matched_idxs, matched_labels, gt_classes)
        sampled_fg_idxs, sampled_bg_idxs = subsample_labels(
            gt_classes, self.batch_size_per_image, self.positive_fraction, self.num_classes
        )
        sampled_idxs = torch.cat([sampled_fg_idxs, sampled_bg_idxs], dim=0)
        return sampled_idxs, gt_classes[sampled_idxs]

    def _classes_of_matches(
        self, matched_idxs: torch.Tensor, matched_labels: torch.Tensor, gt_classes: torch.Tensor
    ) -> torch.Tensor:
        """(R,) class of each proposal's match: background = num_classes, ignored = -1."""
        if gt_classes.numel() > 0:
            gt_classes = gt_classes[matched_idxs]
            # masked_fill_ rather than boolean indexing: no host sync.
            gt_classes.masked_fill_(matched_labels == 0, self.num_classes)
            gt_classes.masked_fill_(matched_labels == -1, -1)
            return gt_classes
        return torch.zeros_like(matched_idxs) + self.num_classes

    def _can_batch_sampling(self) -> bool:
        # Subclasses that change the sampling or the matcher keep the per-image loop.
        return (
            type(self)._sample_proposals is ROIHeads._sample_proposals
            and type(self)._classes_of_matches is ROIHeads._classes_of_matches
            and type(self.proposal_matcher) is Matcher
        )

    def _label_and_sample_batched(
        self, proposals: List[Instances], targets: List[Instances]
    ) -> List[Tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, int]]:
        """Matching and sampling of all images as a batch (match_images,
        subsample_labels_batched), with the same random draws as the per-image loop.
        Returns per image: sampled indices, their classes, every proposal's matched gt
        index, and the numbers of sampled foreground and background proposals."""
        quality_fn = pairwise_iou if type(self)._match_quality is ROIHeads._match_quality else self._match_quality
        proposal_boxes = [p.proposal_boxes for p in proposals]
        matched, labels = match_images(
            self.proposal_matcher, quality_fn, [t.gt_boxes for t in targets], proposal_boxes
        )
        gt_classes = pad_sequence([t.gt_classes for t in targets], batch_first=True)
        if gt_classes.shape[1] > 0:
            classes = gt_classes.gather(1, matched)
        else:
            classes = torch.zeros_like(matched)
        classes.masked_fill_(labels == 0, self.num_classes)
        classes.masked_fill_(labels == -1, -1)
        # Padding columns (images with fewer proposals) are ignored: never sampled, so
        # each row samples as its image alone.
        num_proposals = [len(b) for b in proposal_boxes]
        classes.masked_fill_(~row_mask(num_proposals, classes.shape[1], classes.device), -1)
        samples = subsample_labels_batched(
            classes, self.batch_size_per_image, self.positive_fraction, self.num_classes
        )
        sampled = []
        for row_classes, row_matched, n, (fg_idxs, bg_idxs) in zip(classes, matched, num_proposals, samples):
            sampled_idxs = torch.cat([fg_idxs, bg_idxs], dim=0)
            item = (sampled_idxs, row_classes[sampled_idxs], row_matched[:n], fg_idxs.numel(), bg_idxs.numel())
            sampled.append(item)
        return sampled

    def _match_quality(self, gt_boxes, proposal_boxes) -> torch.Tensor:
        """(G, R) IoU of gt and proposal boxes; rotated heads override this."""
        return pairwise_iou(gt_boxes, proposal_boxes)

    @torch.no_grad()
    def label_and_sample_proposals(self, proposals: List[Instances], targets: List[Instances]) -> List[Instances]:
        """
        Match the proposals of each image to its ground truth, sample a training
        subset, and give it the fields of the matched gt.

        Args:
            proposals: per image, Instances with ``proposal_boxes`` (and
                ``objectness_logits``).
            targets: per image, the gt Instances with ``gt_boxes``, ``gt_classes`` and
                optionally other ``gt_*`` fields (``gt_masks``, ``gt_keypoints`` ...).

        Returns:
            per image, at most ``batch_size_per_image`` proposals with ``gt_classes``
            (background = num_classes) and, for images with gt, each ``gt_*`` field of
            the matched instance. Images without gt get only ``gt_classes``.
        """
        if len(proposals) != len(targets):
            raise ValueError(f"{len(proposals)} proposal lists for {len(targets)} target lists (one per image)")
        if self.proposal_append_gt:
            proposals = add_ground_truth_to_proposals(targets, proposals)

        if len(proposals) > 0 and batch_matching_on(proposals[0].proposal_boxes.device) and self._can_batch_sampling():
            return self._finish_batched_sampling(proposals, targets)
        proposals_with_gt = []
        num_fg_samples = []
        num_bg_samples = []
        for proposals_per_image, targets_per_image in zip(proposals, targets):
            has_gt = len(targets_per_image) > 0
            match_quality_matrix = self._match_quality(targets_per_image.gt_boxes, proposals_per_image.proposal_boxes)
            matched_idxs, matched_labels = self.proposal_matcher(match_quality_matrix)
            sampled_idxs, gt_classes = self._sample_proposals(
                matched_idxs, matched_labels, targets_per_image.gt_classes
            )
            proposals_per_image = proposals_per_image[sampled_idxs]
            proposals_per_image.gt_classes = gt_classes

            if has_gt:
                _set_gt_fields_of_samples(proposals_per_image, targets_per_image, matched_idxs[sampled_idxs])

            num_bg_samples.append(int((gt_classes == self.num_classes).sum()))
            num_fg_samples.append(gt_classes.numel() - num_bg_samples[-1])
            proposals_with_gt.append(proposals_per_image)

        storage = get_event_storage()
        storage.put_scalar("roi_head/num_fg_samples", np.mean(num_fg_samples))
        storage.put_scalar("roi_head/num_bg_samples", np.mean(num_bg_samples))
        return proposals_with_gt

    def _finish_batched_sampling(self, proposals: List[Instances], targets: List[Instances]) -> List[Instances]:
        proposals_with_gt, num_fg_samples, num_bg_samples = [], [], []
        sampled = self._label_and_sample_batched(proposals, targets)
        for proposals_per_image, targets_per_image, item in zip(proposals, targets, sampled):
            sampled_idxs, gt_classes, matched_idxs, num_fg, num_bg = item
            proposals_per_image = proposals_per_image[sampled_idxs]
            proposals_per_image.gt_classes = gt_classes
            if len(targets_per_image) > 0:
                _set_gt_fields_of_samples(proposals_per_image, targets_per_image, matched_idxs[sampled_idxs])
            # Sampled foreground/background counts are known on the host: no sync.
            num_fg_samples.append(num_fg)
            num_bg_samples.append(num_bg)
            proposals_with_gt.append(proposals_per_image)
        storage = get_event_storage()
        storage.put_scalar("roi_head/num_fg_samples", np.mean(num_fg_samples))
        storage.put_scalar("roi_head/num_bg_samples", np.mean(num_bg_samples))
        return proposals_with_gt

    def _check_inputs(self, proposals: List[Instances], targets: Optional[List[Instances]]) -> None:
        if not isinstance(proposals, (list, tuple)):
            raise TypeError(f"argument 'proposals' must be a list of Instances, got {type(proposals).__name__}")
        if self.training:
            if not targets:
                raise ValueError("argument 'targets' is required during training")
            if len(targets) != len(proposals):
                raise ValueError(f"{len(proposals)} proposal lists for {len(targets)} targets (one per image)")

    def forward(
        self,
        images: ImageList,
        features: Dict[str, torch.Tensor],
        proposals: List[Instances],
        targets: Optional[List[Instances]] = None,
    ) -> Tuple[List[Instances], Dict[str, torch.Tensor]]:
        """
        Args:
            images: the input images (heads usually ignore them).
            features: backbone features by name, each (N, C, Hi, Wi).
            proposals: per image, Instances with ``proposal_boxes`` and
                ``objectness_logits``.
            targets: per image, the gt Instances (training only).

        Returns:
            In training, the sampled proposals and a dict of losses; at inference the
            detections per image (``pred_boxes``, ``scores``, ``pred_classes``, plus
            ``pred_masks`` / ``pred_keypoints`` when those branches exist) and {}.
        """
        raise TypeError(f"{type(self).__name__} must override forward(); ROIHeads is a base class")


@ROI_HEADS_REGISTRY.register()
class Res5ROIHeads(ROIHeads):
    """The C4 heads of Faster/Mask R-CNN: RoIs pooled from one feature map (res4) go
    through the ResNet res5 stage, shared by the box and mask predictors."""

    @configurable
    def __init__(
        self,
        *,
        in_features: List[str],
        pooler: ROIPooler,
        res5: nn.Module,
        box_predictor: nn.Module,
        mask_head: Optional[nn.Module] = None,
        **kwargs,
    ):
        """
        Args:
            in_features: the one feature map to pool from.
            pooler: pools RoI features from it.
            res5: the head network (a list of blocks or a module).
            box_predictor: e.g. FastRCNNOutputLayers, on res5's globally pooled output.
            mask_head: optional mask head, on res5's output.
            kwargs: for :class:`ROIHeads`.
        """
        super().__init__(**kwargs)
        self.in_features = in_features
        self.pooler = pooler
        if isinstance(res5, (list, tuple)):
            res5 = nn.Sequential(*res5)
        self.res5 = res5
        self.box_predictor = box_predictor
        self.mask_on = mask_head is not None
        if self.mask_on:
            self.mask_head = mask_head

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg)
        in_features = ret["in_features"] = cfg.MODEL.ROI_HEADS.IN_FEATURES
        if len(in_features) != 1:
            raise ValueError(f"Res5ROIHeads pools from exactly one feature map, got IN_FEATURES={in_features}")
        if cfg.MODEL.KEYPOINT_ON:
            raise ValueError("Res5ROIHeads has no keypoint branch (MODEL.KEYPOINT_ON must be False)")
        pooler_resolution = cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION
        ret["pooler"] = ROIPooler(
            output_size=pooler_resolution,
            scales=(1.0 / input_shape[in_features[0]].stride,),
            sampling_ratio=cfg.MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO,
            pooler_type=cfg.MODEL.ROI_BOX_HEAD.POOLER_TYPE,
        )
        ret["res5"], out_channels = cls._build_res5_block(cfg)
        ret["box_predictor"] = FastRCNNOutputLayers(cfg, ShapeSpec(channels=out_channels, height=1, width=1))
        if cfg.MODEL.MASK_ON:
            ret["mask_head"] = build_mask_head(
                cfg, ShapeSpec(channels=out_channels, width=pooler_resolution, height=pooler_resolution)
            )
        return ret

    @classmethod
    def _build_res5_block(cls, cfg) -> Tuple[nn.Module, int]:
        """The res5 stage of the backbone's ResNet: 3 bottleneck blocks, stride 2."""
        resnets = cfg.MODEL.RESNETS
        stage_channel_factor = 2**3  # res5 has 8x the channels of res2
        bottleneck_channels = resnets.NUM_GROUPS * resnets.WIDTH_PER_GROUP * stage_channel_factor
        out_channels = resnets.RES2_OUT_CHANNELS * stage_channel_factor
        if resnets.DEFORM_ON_PER_STAGE[-1]:
            raise ValueError("Res5ROIHeads: deformable convolution is not supported in the res5 head")
        blocks = ResNet.make_stage(
            BottleneckBlock,
            3,
            stride_per_block=[2, 1, 1],
            in_channels=out_channels // 2,
            bottleneck_channels=bottleneck_channels,
            out_channels=out_channels,
            num_groups=resnets.NUM_GROUPS,
            norm=resnets.NORM,
            stride_in_1x1=resnets.STRIDE_IN_1X1,
        )
        return nn.Sequential(*blocks), out_channels

    def _shared_roi_transform(self, features: List[torch.Tensor], boxes: List[Boxes]) -> torch.Tensor:
        return self.res5(self.pooler(features, boxes))

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
        del targets

        proposal_boxes = [x.proposal_boxes for x in proposals]
        box_features = self._shared_roi_transform(_select_features(features, self.in_features), proposal_boxes)
        predictions = self.box_predictor(box_features.mean(dim=[2, 3]))

        if self.training:
            del features
            losses = self.box_predictor.losses(predictions, proposals)
            if self.mask_on:
                proposals, fg_selection_masks = select_foreground_proposals(proposals, self.num_classes)
                # res5 features are shared with the box branch: select the foreground ones.
                mask_features = box_features[torch.cat(fg_selection_masks, dim=0)]
                del box_features
                losses.update(self.mask_head(mask_features, proposals))
            return [], losses
        pred_instances, _ = self.box_predictor.inference(predictions, proposals)
        pred_instances = self.forward_with_given_boxes(features, pred_instances)
        return pred_instances, {}

    def forward_with_given_boxes(
        self, features: Dict[str, torch.Tensor], instances: List[Instances]
    ) -> List[Instances]:
        """Run the mask branch on given detections (``pred_boxes``, ``pred_classes``)
        at inference; returns ``instances`` with ``pred_masks`` when the branch exists."""
        if not torch.jit.is_scripting():  # validation TorchScript cannot compile
            _check_given_boxes(self, instances)
        if not self.mask_on:
            return instances
        x = self._shared_roi_transform(
            _select_features(features, self.in_features), [x.pred_boxes for x in instances]
        )
        return self.mask_head(x, instances)


def _check_given_boxes(heads: nn.Module, instances: List[Instances]) -> None:
    if heads.training:
        raise RuntimeError("forward_with_given_boxes is for inference: call .eval() first")
    for x in instances:
        if not (x.has("pred_boxes") and x.has("pred_classes")):
            raise ValueError("forward_with_given_boxes: the instances need 'pred_boxes' and 'pred_classes'")


def _pooled_shape(
    cfg_head, input_shape: Dict[str, ShapeSpec], in_features: List[str]
) -> Tuple[Optional[ROIPooler], object]:
    """The pooler of a mask or keypoint branch (from its cfg node's POOLER_* keys) and
    the input shape of its head. An empty POOLER_TYPE means the head pools itself: it
    gets the feature maps' shapes by name and no pooler is built."""
    if not cfg_head.POOLER_TYPE:
        return None, {f: input_shape[f] for f in in_features}
    resolution = cfg_head.POOLER_RESOLUTION
    pooler = ROIPooler(
        output_size=resolution,
        scales=tuple(1.0 / input_shape[k].stride for k in in_features),
        sampling_ratio=cfg_head.POOLER_SAMPLING_RATIO,
        pooler_type=cfg_head.POOLER_TYPE,
    )
    channels = _common_channels(input_shape, in_features)
    return pooler, ShapeSpec(channels=channels, width=resolution, height=resolution)


@ROI_HEADS_REGISTRY.register()
class StandardROIHeads(ROIHeads):
    """The ROI heads of FPN models: each branch (box, mask, keypoint) pools its own
    features and has its own head. Mask and keypoint branches see, in training, the
    foreground proposals and, at inference, the box branch's detections."""

    # Constants for TorchScript, which then compiles only the enabled branches; eager
    # code (e.g. test-time augmentation) may still switch them.
    mask_on: torch.jit.Final[bool]
    keypoint_on: torch.jit.Final[bool]

    @configurable
    def __init__(
        self,
        *,
        box_in_features: List[str],
        box_pooler: ROIPooler,
        box_head: nn.Module,
        box_predictor: nn.Module,
        mask_in_features: Optional[List[str]] = None,
        mask_pooler: Optional[ROIPooler] = None,
        mask_head: Optional[nn.Module] = None,
        keypoint_in_features: Optional[List[str]] = None,
        keypoint_pooler: Optional[ROIPooler] = None,
        keypoint_head: Optional[nn.Module] = None,
        train_on_pred_boxes: bool = False,
        **kwargs,
    ):
        """
        Args:
            box_in_features: feature maps the box branch pools from.
            box_pooler: pools RoI features for the box head.
            box_head: per-RoI feature network (e.g. FastRCNNConvFCHead).
            box_predictor: class scores and box deltas (e.g. FastRCNNOutputLayers).
            mask_in_features: feature maps of the mask branch; None: no mask branch.
            mask_pooler: pools them; None: the mask head takes the feature dict.
            mask_head: the mask head.
            keypoint_in_features, keypoint_pooler, keypoint_head: the same for keypoints.
            train_on_pred_boxes: train the mask/keypoint branches on the box branch's
                refined boxes instead of the proposals.
            kwargs: for :class:`ROIHeads`.
        """
        super().__init__(**kwargs)
        self.in_features = self.box_in_features = box_in_features
        self.box_pooler = box_pooler
        self.box_head = box_head
        self.box_predictor = box_predictor

        self.mask_on = mask_in_features is not None
        if self.mask_on:
            self.mask_in_features = mask_in_features
            self.mask_pooler = mask_pooler
            self.mask_head = mask_head

        self.keypoint_on = keypoint_in_features is not None
        if self.keypoint_on:
            self.keypoint_in_features = keypoint_in_features
            self.keypoint_pooler = keypoint_pooler
            self.keypoint_head = keypoint_head

        self.train_on_pred_boxes = train_on_pred_boxes

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg)
        ret["train_on_pred_boxes"] = cfg.MODEL.ROI_BOX_HEAD.TRAIN_ON_PRED_BOXES
        # Subclasses that override the _init_*_head hooks as plain methods build those
        # branches themselves; only classmethods are called here.
        if inspect.ismethod(cls._init_box_head):
            ret.update(cls._init_box_head(cfg, input_shape))
        if inspect.ismethod(cls._init_mask_head):
            ret.update(cls._init_mask_head(cfg, input_shape))
        if inspect.ismethod(cls._init_keypoint_head):
            ret.update(cls._init_keypoint_head(cfg, input_shape))
        return ret

    @classmethod
    def _init_box_head(cls, cfg, input_shape):
        in_features = cfg.MODEL.ROI_HEADS.IN_FEATURES
        pooler_resolution = cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION
        box_pooler = ROIPooler(
            output_size=pooler_resolution,
            scales=tuple(1.0 / input_shape[k].stride for k in in_features),
            sampling_ratio=cfg.MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO,
            pooler_type=cfg.MODEL.ROI_BOX_HEAD.POOLER_TYPE,
        )
        in_channels = _common_channels(input_shape, in_features)
        box_head = build_box_head(
            cfg, ShapeSpec(channels=in_channels, height=pooler_resolution, width=pooler_resolution)
        )
        box_predictor = FastRCNNOutputLayers(cfg, box_head.output_shape)
        return {
            "box_in_features": in_features,
            "box_pooler": box_pooler,
            "box_head": box_head,
            "box_predictor": box_predictor,
        }

    @classmethod
    def _init_mask_head(cls, cfg, input_shape):
        if not cfg.MODEL.MASK_ON:
            return {}
        in_features = cfg.MODEL.ROI_HEADS.IN_FEATURES
        pooler, shape = _pooled_shape(cfg.MODEL.ROI_MASK_HEAD, input_shape, in_features)
        return {"mask_in_features": in_features, "mask_pooler": pooler, "mask_head": build_mask_head(cfg, shape)}

    @classmethod
    def _init_keypoint_head(cls, cfg, input_shape):
        if not cfg.MODEL.KEYPOINT_ON:
            return {}
        in_features = cfg.MODEL.ROI_HEADS.IN_FEATURES
        pooler, shape = _pooled_shape(cfg.MODEL.ROI_KEYPOINT_HEAD, input_shape, in_features)
        return {
            "keypoint_in_features": in_features,
            "keypoint_pooler": pooler,
            "keypoint_head": build_keypoint_head(cfg, shape),
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
        del targets

        if self.training:
            losses = self._forward_box(features, proposals)
            # The box branch may have replaced proposal_boxes (train_on_pred_boxes).
            losses.update(self._forward_mask(features, proposals))
            losses.update(self._forward_keypoint(features, proposals))
            return proposals, losses
        pred_instances = self._forward_box(features, proposals)
        # Masks and keypoints are predicted on the detections, not the proposals.
        pred_instances = self.forward_with_given_boxes(features, pred_instances)
        return pred_instances, {}

    def forward_with_given_boxes(
        self, features: Dict[str, torch.Tensor], instances: List[Instances]
    ) -> List[Instances]:
        """
        Run the mask and keypoint branches on given detections at inference (used
        after the box branch, or e.g. on boxes from test-time augmentation).

        Args:
            features: backbone features by name.
            instances: per image, Instances with ``pred_boxes`` and ``pred_classes``.

        Returns:
            the same Instances with ``pred_masks`` / ``pred_keypoints`` added.
        """
        if not torch.jit.is_scripting():  # validation TorchScript cannot compile
            _check_given_boxes(self, instances)
        instances = self._forward_mask(features, instances)
        instances = self._forward_keypoint(features, instances)
        return instances

    def _forward_box(self, features: Dict[str, torch.Tensor], proposals: List[Instances]):
        """The box branch: losses in training, detections per image at inference."""
        box_features = self.box_pooler(
            _select_features(features, self.box_in_features), [x.proposal_boxes for x in proposals]
        )
        box_features = self.box_head(box_features)
        predictions = self.box_predictor(box_features)
        del box_features

        if self.training:
            losses = self.box_predictor.losses(predictions, proposals)
            if self.train_on_pred_boxes:
                with torch.no_grad():
                    pred_boxes = self.box_predictor.predict_boxes_for_gt_classes(predictions, proposals)
                    for proposals_per_image, pred_boxes_per_image in zip(proposals, pred_boxes):
                        proposals_per_image.proposal_boxes = Boxes(pred_boxes_per_image)
            return losses
        pred_instances, _ = self.box_predictor.inference(predictions, proposals)
        return pred_instances

    def _forward_mask(self, features: Dict[str, torch.Tensor], instances: List[Instances]):
        """The mask branch: {"loss_mask"} in training, instances with ``pred_masks``
        at inference (unchanged input when the branch is off)."""
        if not self.mask_on:
            return {} if self.training else instances
        if self.training:
            # Masks are learned on foreground proposals only.
            instances, _ = select_foreground_proposals(instances, self.num_classes)
        # Pooled features of the training RoIs or the detections, or the feature dict when
        # the head pools itself. Written inline (not a helper) so that TorchScript types it.
        if self.mask_pooler is not None:
            boxes = [x.proposal_boxes if self.training else x.pred_boxes for x in instances]
            x = self.mask_pooler(_select_features(features, self.mask_in_features), boxes)
            return self.mask_head(x, instances)
        return self.mask_head(dict(zip(self.mask_in_features, _select_features(features, self.mask_in_features))), instances)

    def _forward_keypoint(self, features: Dict[str, torch.Tensor], instances: List[Instances]):
        """The keypoint branch: {"loss_keypoint"} in training, instances with
        ``pred_keypoints`` at inference (unchanged input when the branch is off)."""
        if not self.keypoint_on:
            return {} if self.training else instances
        if self.training:
            # Only foreground proposals with a visible keypoint inside give a loss.
            instances, _ = select_foreground_proposals(instances, self.num_classes)
            instances = select_proposals_with_visible_keypoints(instances)
        if self.keypoint_pooler is not None:
            boxes = [x.proposal_boxes if self.training else x.pred_boxes for x in instances]
            x = self.keypoint_pooler(_select_features(features, self.keypoint_in_features), boxes)
            return self.keypoint_head(x, instances)
        keypoint_features = dict(zip(self.keypoint_in_features, _select_features(features, self.keypoint_in_features)))
        return self.keypoint_head(keypoint_features, instances)
