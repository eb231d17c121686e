"""Region Proposal Network (Faster R-CNN): objectness and box deltas for every anchor."""
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from detectron2.config import configurable
from detectron2.layers import Conv2d, ShapeSpec, cat, nonzero_tuple
from detectron2.structures import Boxes, ImageList, Instances, pairwise_iou
from detectron2.utils.events import get_event_storage
from detectron2.utils.memory import retry_if_cuda_oom
from detectron2.utils.registry import Registry

from ..anchor_generator import build_anchor_generator
from ..box_regression import Box2BoxTransform, _dense_box_regression_loss
from ..batched_matching import batch_matching_on, match_images
from ..matcher import Matcher
from ..sampling import subsample_labels, subsample_labels_batched
from .build import PROPOSAL_GENERATOR_REGISTRY
from .proposal_utils import _is_tracing, find_top_rpn_proposals

__all__ = ["RPN_HEAD_REGISTRY", "build_rpn_head", "StandardRPNHead", "RPN"]

RPN_HEAD_REGISTRY = Registry("RPN_HEAD")
RPN_HEAD_REGISTRY.__doc__ = """
Registry for RPN heads: modules that take a list of feature maps and return, per map,
objectness logits (N, A, Hi, Wi) and anchor deltas (N, A*box_dim, Hi, Wi). Called as
``obj(cfg, input_shape)`` with ``input_shape`` a list of ShapeSpec.
"""

_BOX_REG_LOSS_TYPES = ("smooth_l1", "giou", "diou", "ciou")


def build_rpn_head(cfg, input_shape: List[ShapeSpec]) -> nn.Module:
    """Build the RPN head named by ``cfg.MODEL.RPN.HEAD_NAME``."""
    return RPN_HEAD_REGISTRY.get(cfg.MODEL.RPN.HEAD_NAME)(cfg, input_shape)


def _check_in_features(module: nn.Module, features: Dict[str, torch.Tensor]) -> None:
    missing = [f for f in module.in_features if f not in features]
    if missing:
        raise KeyError(f"{type(module).__name__}: features lack {missing} (got {sorted(features)})")


def _check_gt_instances(module: nn.Module, gt_instances: Optional[List[Instances]], images: ImageList) -> None:
    if gt_instances is None:
        raise ValueError(
            f"{type(module).__name__} needs gt_instances in training: give every input an 'instances' field"
        )
    if len(gt_instances) != len(images.image_sizes):
        raise ValueError(f"gt_instances has {len(gt_instances)} entries for {len(images.image_sizes)} images")


def _check_feature_list(features, name: str) -> None:
    if not isinstance(features, (list, tuple)) or len(features) == 0:
        raise TypeError(f"{name}: features must be a non-empty list of (N, C, H, W) tensors")
    for i, x in enumerate(features):
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{name}: features[{i}] must be an (N, C, H, W) tensor, got {shape}")


@RPN_HEAD_REGISTRY.register()
class StandardRPNHead(nn.Module):
    """The Faster R-CNN RPN head, shared by all feature levels: 3x3 conv(s) with ReLU,
    then two sibling 1x1 convs predicting, for each of the A anchors of a position, an
    objectness logit and ``box_dim`` box deltas."""

    @configurable
    def __init__(self, *, in_channels: int, num_anchors: int, box_dim: int = 4, conv_dims: List[int] = (-1,)):
        """
        Args:
            in_channels: channels of every input feature map.
            num_anchors: anchors per spatial position (A).
            box_dim: box deltas per anchor (4, or 5 for rotated boxes).
            conv_dims: output channels of each hidden 3x3 conv; -1 keeps the input
                channels. One entry gives a single conv named ``conv`` (upstream's
                checkpoint layout); several give ``conv.conv0``, ``conv.conv1``...
        """
        super().__init__()
        conv_dims = list(conv_dims)
        if len(conv_dims) == 0:
            raise ValueError("StandardRPNHead: conv_dims must have at least one entry")
        channels = in_channels
        convs = []
        for k, dim in enumerate(conv_dims):
            out_channels = channels if dim == -1 else dim
            if out_channels <= 0:
                raise ValueError(f"StandardRPNHead: conv_dims[{k}] must be positive or -1, got {dim}")
            convs.append(self._get_rpn_conv(channels, out_channels))
            channels = out_channels
        if len(convs) == 1:
            self.conv = convs[0]
        else:
            self.conv = nn.Sequential()
            for k, conv in enumerate(convs):
                self.conv.add_module(f"conv{k}", conv)
        self.objectness_logits = nn.Conv2d(channels, num_anchors, kernel_size=1, stride=1)
        self.anchor_deltas = nn.Conv2d(channels, num_anchors * box_dim, kernel_size=1, stride=1)
        for layer in self.modules():
            if isinstance(layer, nn.Conv2d):
                nn.init.normal_(layer.weight, std=0.01)
                nn.init.constant_(layer.bias, 0)

    def _get_rpn_conv(self, in_channels: int, out_channels: int) -> nn.Module:
        return Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1, activation=nn.ReLU())

    @classmethod
    def from_config(cls, cfg, input_shape: List[ShapeSpec]):
        in_channels = {s.channels for s in input_shape}
        if len(in_channels) != 1:
            raise ValueError(f"StandardRPNHead: all input features need the same channels, got {in_channels}")
        anchor_generator = build_anchor_generator(cfg, input_shape)
        num_anchors = set(anchor_generator.num_anchors)
        if len(num_anchors) != 1:
            raise ValueError(
                f"StandardRPNHead: every level needs the same number of anchors per position, got {num_anchors}"
            )
        return {
            "in_channels": in_channels.pop(),
            "num_anchors": num_anchors.pop(),
            "box_dim": anchor_generator.box_dim,
            "conv_dims": cfg.MODEL.RPN.CONV_DIMS,
        }

    def forward(self, features: List[torch.Tensor]) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """
        Args:
            features: feature maps (N, C, Hi, Wi), one per level.

        Returns:
            per level, objectness logits (N, A, Hi, Wi) and anchor deltas
            (N, A*box_dim, Hi, Wi).
        """
        if not torch.jit.is_scripting():
            _check_feature_list(features, "StandardRPNHead")
        pred_objectness_logits, pred_anchor_deltas = [], []
        for x in features:
            t = self.conv(x)
            pred_objectness_logits.append(self.objectness_logits(t))
            pred_anchor_deltas.append(self.anchor_deltas(t))
        return pred_objectness_logits, pred_anchor_deltas


@PROPOSAL_GENERATOR_REGISTRY.register()
class RPN(nn.Module):
    """Region Proposal Network: predicts objectness and box deltas for every anchor,
    turns them into proposals, and in training computes its losses against anchors
    labelled by IoU with the ground truth."""

    # The box-type specific steps; RRPN swaps in the rotated ones.
    _pairwise_iou = staticmethod(pairwise_iou)
    _find_top_proposals = staticmethod(find_top_rpn_proposals)
    _box2box_transform_class = Box2BoxTransform

    @configurable
    def __init__(
        self,
        *,
        in_features: List[str],
        head: nn.Module,
        anchor_generator: nn.Module,
        anchor_matcher: Matcher,
        box2box_transform: Box2BoxTransform,
        batch_size_per_image: int,
        positive_fraction: float,
        pre_nms_topk: Tuple[float, float],
        post_nms_topk: Tuple[float, float],
        nms_thresh: float = 0.7,
        min_box_size: float = 0.0,
        anchor_boundary_thresh: float = -1.0,
        loss_weight: Union[float, Dict[str, float]] = 1.0,
        box_reg_loss_type: str = "smooth_l1",
        smooth_l1_beta: float = 0.0,
    ):
        """
        Args:
            in_features: names of the backbone features to use.
            head: the RPN head (e.g. StandardRPNHead).
            anchor_generator: makes anchors from the list of features.
            anchor_matcher: labels anchors by their IoU with the ground truth.
            box2box_transform: anchor <-> box delta parameterization.
            batch_size_per_image: anchors sampled per image for the losses.
            positive_fraction: wanted fraction of positives among the sampled anchors.
            pre_nms_topk: (train, test) proposals kept per level before NMS.
            post_nms_topk: (train, test) proposals kept per image after NMS.
            nms_thresh: IoU threshold of the NMS on proposals.
            min_box_size: proposals with a side <= this are removed.
            anchor_boundary_thresh: anchors reaching more than this many pixels outside
                the image are ignored in training; negative disables it (legacy option).
            loss_weight: weight of both losses, or a dict {"loss_rpn_cls": w,
                "loss_rpn_loc": w}.
            box_reg_loss_type: "smooth_l1", "giou", "diou" or "ciou".
            smooth_l1_beta: beta of the smooth L1 loss (0: L1).
        """
        super().__init__()
        if box_reg_loss_type not in _BOX_REG_LOSS_TYPES:
            raise ValueError(f"RPN: box_reg_loss_type must be one of {_BOX_REG_LOSS_TYPES}, got {box_reg_loss_type!r}")
        self.in_features = list(in_features)
        self.rpn_head = head
        self.anchor_generator = anchor_generator
        self.anchor_matcher = anchor_matcher
        self.box2box_transform = box2box_transform
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction
        # Indexed by self.training.
        self.pre_nms_topk = {True: int(pre_nms_topk[0]), False: int(pre_nms_topk[1])}
        self.post_nms_topk = {True: int(post_nms_topk[0]), False: int(post_nms_topk[1])}
        self.nms_thresh = nms_thresh
        self.min_box_size = float(min_box_size)
        self.anchor_boundary_thresh = anchor_boundary_thresh
        if isinstance(loss_weight, (int, float)):
            loss_weight = {"loss_rpn_cls": loss_weight, "loss_rpn_loc": loss_weight}
        self.loss_weight = loss_weight
        self.box_reg_loss_type = box_reg_loss_type
        self.smooth_l1_beta = smooth_l1_beta

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        rpn = cfg.MODEL.RPN
        in_features = rpn.IN_FEATURES
        missing = [f for f in in_features if f not in input_shape]
        if missing:
            raise ValueError(
                f"MODEL.RPN.IN_FEATURES names {missing}, which the backbone does not output "
                f"(it has {sorted(input_shape)})"
            )
        shapes = [input_shape[f] for f in in_features]
        return {
            "in_features": in_features,
            "min_box_size": cfg.MODEL.PROPOSAL_GENERATOR.MIN_SIZE,
            "nms_thresh": rpn.NMS_THRESH,
            "batch_size_per_image": rpn.BATCH_SIZE_PER_IMAGE,
            "positive_fraction": rpn.POSITIVE_FRACTION,
            "loss_weight": {
                "loss_rpn_cls": rpn.LOSS_WEIGHT,
                "loss_rpn_loc": rpn.BBOX_REG_LOSS_WEIGHT * rpn.LOSS_WEIGHT,
            },
            "anchor_boundary_thresh": rpn.BOUNDARY_THRESH,
            "box2box_transform": cls._box2box_transform_class(weights=rpn.BBOX_REG_WEIGHTS),
            "box_reg_loss_type": rpn.BBOX_REG_LOSS_TYPE,
            "smooth_l1_beta": rpn.SMOOTH_L1_BETA,
            "pre_nms_topk": (rpn.PRE_NMS_TOPK_TRAIN, rpn.PRE_NMS_TOPK_TEST),
            "post_nms_topk": (rpn.POST_NMS_TOPK_TRAIN, rpn.POST_NMS_TOPK_TEST),
            "anchor_generator": build_anchor_generator(cfg, shapes),
            "anchor_matcher": Matcher(rpn.IOU_THRESHOLDS, rpn.IOU_LABELS, allow_low_quality_matches=True),
            "head": build_rpn_head(cfg, shapes),
        }

    def _subsample_labels(self, label: torch.Tensor) -> torch.Tensor:
        """Keep a random subset of positives (1) and negatives (0); the rest become -1."""
        pos_idx, neg_idx = subsample_labels(label, self.batch_size_per_image, self.positive_fraction, 0)
        label.fill_(-1)
        label.scatter_(0, pos_idx, 1)
        label.scatter_(0, neg_idx, 0)
        return label

    def _match_anchors(self, anchors: Boxes, gt_boxes_i: Boxes) -> Tuple[torch.Tensor, torch.Tensor]:
        match_quality_matrix = retry_if_cuda_oom(self._pairwise_iou)(gt_boxes_i, anchors)
        matched_idxs, gt_labels_i = retry_if_cuda_oom(self.anchor_matcher)(match_quality_matrix)
        # The matcher may have fallen back to the CPU on OOM.
        return matched_idxs.to(device=gt_boxes_i.device), gt_labels_i.to(device=gt_boxes_i.device)

    def _sample_and_gather(self, anchors: Boxes, gt_boxes_i: Boxes, matched_idxs, gt_labels_i):
        gt_labels_i = self._subsample_labels(gt_labels_i)
        if len(gt_boxes_i) == 0:
            # No ground truth: every anchor is negative, the boxes are never used.
            return gt_labels_i, torch.zeros_like(anchors.tensor)
        return gt_labels_i, gt_boxes_i[matched_idxs].tensor

    @torch.jit.unused
    @torch.no_grad()
    def label_and_sample_anchors(
        self, anchors: List[Boxes], gt_instances: List[Instances]
    ) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """
        Args:
            anchors: per level, the anchors (Boxes of R_l boxes).
            gt_instances: per image, Instances with ``gt_boxes``.

        Returns:
            gt_labels: per image, (R,) labels of all R anchors: 1 positive, 0 negative,
                -1 ignored (not sampled, between the IoU thresholds, or outside the image).
            matched_gt_boxes: per image, (R, 4) ground-truth box matched to each anchor
                (meaningful only where the label is 1).
        """
        anchors = type(anchors[0]).cat(anchors)
        batch = len(gt_instances) > 0 and batch_matching_on(anchors.device)
        if batch and type(self.anchor_matcher) is Matcher:
            return self._label_and_sample_batched(anchors, gt_instances)
        gt_labels, matched_gt_boxes = [], []
        for inst in gt_instances:
            gt_boxes_i = inst.gt_boxes
            matched_idxs, gt_labels_i = self._match_anchors(anchors, gt_boxes_i)
            if self.anchor_boundary_thresh >= 0:
                inside = anchors.inside_box(inst.image_size, self.anchor_boundary_thresh)
                gt_labels_i[~inside] = -1
            labels_i, boxes_i = self._sample_and_gather(anchors, gt_boxes_i, matched_idxs, gt_labels_i)
            gt_labels.append(labels_i)
            matched_gt_boxes.append(boxes_i)
        return gt_labels, matched_gt_boxes

    def _label_and_sample_batched(
        self, anchors: Boxes, gt_instances: List[Instances]
    ) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """label_and_sample_anchors with the same results and random draws, but matched
        and sampled as a batch (match_images, subsample_labels_batched): a fixed few
        host syncs and some 40 ops per batch instead of per image."""
        gt_boxes = [inst.gt_boxes for inst in gt_instances]
        matched_idxs, labels = match_images(self.anchor_matcher, self._pairwise_iou, gt_boxes, anchors)
        if self.anchor_boundary_thresh >= 0:
            labels.masked_fill_(~self._inside_images(anchors, [inst.image_size for inst in gt_instances]), -1)
        samples = subsample_labels_batched(labels, self.batch_size_per_image, self.positive_fraction, 0)
        labels.fill_(-1)
        for row, (pos_idx, neg_idx) in zip(labels, samples):
            row.scatter_(0, pos_idx, 1)
            row.scatter_(0, neg_idx, 0)
        # Images without gt gather the zero padding: the all-zero boxes of the loop.
        gt_padded = pad_sequence([b.tensor for b in gt_boxes], batch_first=True)
        if gt_padded.shape[1] == 0:
            matched_gt_boxes = anchors.tensor.new_zeros((len(gt_boxes),) + tuple(anchors.tensor.shape))
        else:
            index = matched_idxs[..., None].expand(-1, -1, gt_padded.shape[2])
            matched_gt_boxes = gt_padded.gather(1, index)
        return list(labels.unbind(0)), list(matched_gt_boxes.unbind(0))

    def _inside_images(self, anchors: Boxes, image_sizes: List[Tuple[int, int]]) -> torch.Tensor:
        """(B, R) Boxes.inside_box(image_size, anchor_boundary_thresh) of every image."""
        t, margin = anchors.tensor, self.anchor_boundary_thresh
        limits = torch.as_tensor([[w + margin, h + margin] for h, w in image_sizes], dtype=t.dtype)
        limits = limits.to(t.device, non_blocking=True)
        inside = (t[:, 0] >= -margin) & (t[:, 1] >= -margin)
        return inside & (t[:, 2] < limits[:, :1]) & (t[:, 3] < limits[:, 1:])

    @torch.jit.unused
    def losses(
        self,
        anchors: List[Boxes],
        pred_objectness_logits: List[torch.Tensor],
        gt_labels: List[torch.Tensor],
        pred_anchor_deltas: List[torch.Tensor],
        gt_boxes: List[torch.Tensor],
    ) -> Dict[str, torch.Tensor]:
        """
        Args:
            anchors: per level, the anchors.
            pred_objectness_logits: per level, (N, Hi*Wi*A) logits.
            gt_labels: per image, (R,) from label_and_sample_anchors.
            pred_anchor_deltas: per level, (N, Hi*Wi*A, box_dim) deltas.
            gt_boxes: per image, (R, box_dim) matched ground truth.

        Returns:
            {"loss_rpn_cls", "loss_rpn_loc"}: sums over the sampled anchors divided by
            ``batch_size_per_image * N``, times the loss weights.
        """
        num_images = len(gt_labels)
        gt_labels = torch.stack(gt_labels)  # (N, R)
        pos_mask = gt_labels == 1
        storage = get_event_storage()
        # One host copy for both counts.
        num_pos, num_neg = torch.stack([pos_mask.sum(), (gt_labels == 0).sum()]).tolist()
        storage.put_scalar("rpn/num_pos_anchors", num_pos / num_images)
        storage.put_scalar("rpn/num_neg_anchors", num_neg / num_images)

        localization_loss = _dense_box_regression_loss(
            anchors,
            self.box2box_transform,
            pred_anchor_deltas,
            gt_boxes,
            pos_mask,
            box_reg_loss_type=self.box_reg_loss_type,
            smooth_l1_beta=self.smooth_l1_beta,
        )
        valid = nonzero_tuple(gt_labels >= 0)  # one nonzero for both operands
        objectness_loss = F.binary_cross_entropy_with_logits(
            cat(pred_objectness_logits, dim=1)[valid],
            gt_labels[valid].to(torch.float32),
            reduction="sum",
        )
        normalizer = self.batch_size_per_image * num_images
        losses = {"loss_rpn_cls": objectness_loss / normalizer, "loss_rpn_loc": localization_loss / normalizer}
        return {k: v * self.loss_weight.get(k, 1.0) for k, v in losses.items()}

    def _flatten_predictions(
        self, pred_objectness_logits: List[torch.Tensor], pred_anchor_deltas: List[torch.Tensor]
    ) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """Reorder the head's maps to the anchors' (y, x, anchor) order."""
        box_dim = self.anchor_generator.box_dim
        # (N, A, Hi, Wi) -> (N, Hi, Wi, A) -> (N, Hi*Wi*A)
        logits = [score.permute(0, 2, 3, 1).flatten(1) for score in pred_objectness_logits]
        # (N, A*B, Hi, Wi) -> (N, A, B, Hi, Wi) -> (N, Hi, Wi, A, B) -> (N, Hi*Wi*A, B)
        deltas = [
            x.view(x.shape[0], -1, box_dim, x.shape[-2], x.shape[-1]).permute(0, 3, 4, 1, 2).flatten(1, -2)
            for x in pred_anchor_deltas
        ]
        return logits, deltas

    def forward(
        self,
        images: ImageList,
        features: Dict[str, torch.Tensor],
        gt_instances: Optional[List[Instances]] = None,
    ):
        """
        Args:
            images: the input batch (only its image sizes are used).
            features: backbone features by name; ``in_features`` are used.
            gt_instances: per image, Instances with ``gt_boxes``; needed in training.

        Returns:
            proposals: per image, Instances with ``proposal_boxes`` and
                ``objectness_logits``.
            losses: {"loss_rpn_cls", "loss_rpn_loc"} in training, else {}.
        """
        if not torch.jit.is_scripting():  # validation code TorchScript cannot compile
            _check_in_features(self, features)
        features = [features[f] for f in self.in_features]
        anchors = self.anchor_generator(features)
        pred_objectness_logits, pred_anchor_deltas = self._flatten_predictions(*self.rpn_head(features))

        if self.training:
            if not torch.jit.is_scripting():
                _check_gt_instances(self, gt_instances, images)
            assert gt_instances is not None, "RPN requires gt_instances in training!"
            gt_labels, gt_boxes = self.label_and_sample_anchors(anchors, gt_instances)
            losses = self.losses(anchors, pred_objectness_logits, gt_labels, pred_anchor_deltas, gt_boxes)
        else:
            losses = {}
        proposals = self.predict_proposals(anchors, pred_objectness_logits, pred_anchor_deltas, images.image_sizes)
        return proposals, losses

    def predict_proposals(
        self,
        anchors: List[Boxes],
        pred_objectness_logits: List[torch.Tensor],
        pred_anchor_deltas: List[torch.Tensor],
        image_sizes: List[Tuple[int, int]],
    ) -> List[Instances]:
        """Decode the deltas and select the top proposals of each image. No gradient
        flows into proposals: joint training treats them as fixed inputs of the ROI heads."""
        with torch.no_grad():
            pred_proposals = self._decode_proposals(anchors, pred_anchor_deltas)
            return self._find_top_proposals(
                pred_proposals,
                pred_objectness_logits,
                image_sizes,
                self.nms_thresh,
                self.pre_nms_topk[self.training],
                self.post_nms_topk[self.training],
                self.min_box_size,
                self.training,
            )

    def _decode_proposals(self, anchors: List[Boxes], pred_anchor_deltas: List[torch.Tensor]) -> List[torch.Tensor]:
        """Per level, (N, Hi*Wi*A, B) boxes: the deltas applied to the anchors."""
        num_images = pred_anchor_deltas[0].shape[0]
        if not torch.jit.is_scripting():
            if len(anchors) > 1 and not _is_tracing():
                return self._decode_all_levels(anchors, pred_anchor_deltas, num_images)
        proposals = []
        for anchors_i, deltas_i in zip(anchors, pred_anchor_deltas):
            box_dim = anchors_i.tensor.size(1)
            deltas_i = deltas_i.reshape(-1, box_dim)
            anchors_i = anchors_i.tensor.unsqueeze(0).expand(num_images, -1, -1).reshape(-1, box_dim)
            proposals_i = self.box2box_transform.apply_deltas(deltas_i, anchors_i)
            proposals.append(proposals_i.view(num_images, -1, box_dim))
        return proposals

    def _decode_all_levels(
        self, anchors: List[Boxes], pred_anchor_deltas: List[torch.Tensor], num_images: int
    ) -> List[torch.Tensor]:
        """_decode_proposals in one decode over all levels: the same elementwise values,
        a fifth of the ops. (A trace keeps the loop: its sizes follow the input.)"""
        box_dim = anchors[0].tensor.size(1)
        all_anchors = cat([a.tensor for a in anchors]).unsqueeze(0).expand(num_images, -1, -1)
        deltas = cat([d.reshape(num_images, -1, box_dim) for d in pred_anchor_deltas], dim=1)
        decoded = self.box2box_transform.apply_deltas(deltas.reshape(-1, box_dim), all_anchors.reshape(-1, box_dim))
        return list(decoded.view(num_images, -1, box_dim).split([len(a) for a in anchors], dim=1))
