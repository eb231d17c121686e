"""The Fast R-CNN box predictor: per-RoI class scores and class-specific box deltas,
their losses, and the score-threshold + per-class NMS inference."""
from typing import Callable, Dict, List, Optional, Tuple, Union

import torch
from torch import nn
from torch.nn import functional as F

from detectron2.config import configurable
from detectron2.layers import ShapeSpec, batched_nms, cat, cross_entropy, nonzero_tuple
from detectron2.modeling.box_regression import Box2BoxTransform, _dense_box_regression_loss
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import get_event_storage

__all__ = ["fast_rcnn_inference", "fast_rcnn_inference_single_image", "FastRCNNOutputLayers"]

# Shapes used below: R RoIs (summed over the batch), K foreground classes (background
# is class K), B the box dimension (4 for XYXY boxes, 5 for rotated boxes).


def fast_rcnn_inference(
    boxes: List[torch.Tensor],
    scores: List[torch.Tensor],
    image_shapes: List[Tuple[int, int]],
    score_thresh: float,
    nms_thresh: float,
    topk_per_image: int,
) -> Tuple[List[Instances], List[torch.Tensor]]:
    """
    Score thresholding, clipping and per-class NMS of the predictions of each image.

    Args:
        boxes: per image, (Ri, K*4) class-specific or (Ri, 4) class-agnostic boxes.
        scores: per image, (Ri, K+1) class probabilities (background last).
        image_shapes: per image, its (height, width).
        score_thresh: keep (box, class) pairs scoring above this.
        nms_thresh: IoU threshold of the per-class NMS, in [0, 1].
        topk_per_image: keep at most this many detections per image (< 0: all).

    Returns:
        instances: per image, an Instances with ``pred_boxes``, ``scores`` and
            ``pred_classes``, at most ``topk_per_image`` of them, by decreasing score.
        kept_indices: per image, the index of the input row each detection comes from.
    """
    if not torch.jit.is_scripting():  # validation TorchScript cannot compile
        _check_list_lengths(boxes=boxes, scores=scores, image_shapes=image_shapes)
    results = [
        fast_rcnn_inference_single_image(b, s, shape, score_thresh, nms_thresh, topk_per_image)
        for b, s, shape in zip(boxes, scores, image_shapes)
    ]
    return [r[0] for r in results], [r[1] for r in results]


def _check_list_lengths(**lists) -> None:
    lengths = {name: len(value) for name, value in lists.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"expected one entry per image in each of {sorted(lengths)}, got lengths {lengths}")


def _check_predictions(boxes: torch.Tensor, scores: torch.Tensor, box_dim: int) -> None:
    for name, t in (("boxes", boxes), ("scores", scores)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"argument '{name}' must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 2:
            raise ValueError(f"argument '{name}' must be 2-D, got shape {t.shape}")
        if not t.is_floating_point():
            raise TypeError(f"argument '{name}' must be a floating-point tensor, got {t.dtype}")
    if boxes.shape[0] != scores.shape[0]:
        raise ValueError(f"'boxes' has {boxes.shape[0]} rows but 'scores' has {scores.shape[0]}")
    if boxes.device != scores.device:
        raise ValueError(f"'boxes' is on {boxes.device} but 'scores' is on {scores.device}")
    num_classes = scores.shape[1] - 1
    if num_classes < 1 or boxes.shape[1] not in (box_dim, box_dim * num_classes):
        raise ValueError(
            f"'boxes' must have shape (R, {box_dim}) or (R, K*{box_dim}) for 'scores' of shape (R, K+1); "
            f"got boxes {boxes.shape} and scores {scores.shape}"
        )


def _filter_by_score(
    boxes: torch.Tensor, scores: torch.Tensor, score_thresh: float, box_dim: int
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(box, class) pairs of the foreground classes scoring above ``score_thresh``:
    their boxes, scores and (row, class) index pairs. ``boxes`` is (R, C, box_dim)."""
    scores = scores[:, :-1]  # drop the background column
    filter_mask = scores > score_thresh
    filter_inds = filter_mask.nonzero()
    if boxes.shape[1] == 1:
        boxes = boxes[filter_inds[:, 0], 0]
    else:
        boxes = boxes[filter_mask]
    return boxes.reshape(-1, box_dim), scores[filter_mask], filter_inds


def _drop_non_finite(boxes: torch.Tensor, scores: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    valid_mask = torch.isfinite(boxes).all(dim=1) & torch.isfinite(scores).all(dim=1)
    if not valid_mask.all():
        boxes, scores = boxes[valid_mask], scores[valid_mask]
    return boxes, scores


def fast_rcnn_inference_single_image(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    image_shape: Tuple[int, int],
    score_thresh: float,
    nms_thresh: float,
    topk_per_image: int,
) -> Tuple[Instances, torch.Tensor]:
    """:func:`fast_rcnn_inference` for one image. Rows with a non-finite box or score
    are dropped first; the returned indices count the remaining rows."""
    if not torch.jit.is_scripting():  # validation TorchScript cannot compile
        _check_predictions(boxes, scores, 4)
    boxes, scores = _drop_non_finite(boxes, scores)
    num_bbox_reg_classes = boxes.shape[1] // 4
    clipped = Boxes(boxes.reshape(-1, 4))
    clipped.clip(image_shape)
    boxes = clipped.tensor.view(-1, num_bbox_reg_classes, 4)

    boxes, scores, filter_inds = _filter_by_score(boxes, scores, score_thresh, 4)
    # Boxes are float32 whatever the model's dtype; NMS needs scores of the same dtype.
    keep = batched_nms(boxes, scores.to(boxes.dtype), filter_inds[:, 1], nms_thresh)
    if topk_per_image >= 0:
        keep = keep[:topk_per_image]
    boxes, scores, filter_inds = boxes[keep], scores[keep], filter_inds[keep]

    result = Instances(image_shape)
    result.pred_boxes = Boxes(boxes)
    result.scores = scores
    result.pred_classes = filter_inds[:, 1]
    return result, filter_inds[:, 0]


def _log_classification_stats(pred_logits: torch.Tensor, gt_classes: torch.Tensor, prefix: str = "fast_rcnn") -> None:
    """Put ``{prefix}/cls_accuracy``, ``fg_cls_accuracy`` and ``false_negative`` (the
    fraction of foreground RoIs classified as background) into the event storage."""
    num_instances = gt_classes.numel()
    if num_instances == 0:
        return
    pred_classes = pred_logits.argmax(dim=1)
    bg_class_ind = pred_logits.shape[1] - 1

    fg_inds = (gt_classes >= 0) & (gt_classes < bg_class_ind)
    # Masked counts instead of boolean indexing, and one host copy for all four.
    counts = torch.stack([
        fg_inds.sum(),
        (fg_inds & (pred_classes == bg_class_ind)).sum(),
        (pred_classes == gt_classes).sum(),
        (fg_inds & (pred_classes == gt_classes)).sum(),
    ])
    num_fg, num_false_negative, num_accurate, fg_num_accurate = counts.tolist()

    storage = get_event_storage()
    storage.put_scalar(f"{prefix}/cls_accuracy", num_accurate / num_instances)
    if num_fg > 0:
        storage.put_scalar(f"{prefix}/fg_cls_accuracy", fg_num_accurate / num_fg)
        storage.put_scalar(f"{prefix}/false_negative", num_false_negative / num_fg)


class FastRCNNOutputLayers(nn.Module):
    """Two linear layers on per-RoI features: ``cls_score`` (K+1 class logits) and
    ``bbox_pred`` (box deltas, per class or class-agnostic)."""

    @configurable
    def __init__(
        self,
        input_shape: Union[ShapeSpec, int],
        *,
        box2box_transform,
        num_classes: int,
        test_score_thresh: float = 0.0,
        test_nms_thresh: float = 0.5,
        test_topk_per_image: int = 100,
        cls_agnostic_bbox_reg: bool = False,
        smooth_l1_beta: float = 0.0,
        box_reg_loss_type: str = "smooth_l1",
        loss_weight: Union[float, Dict[str, float]] = 1.0,
        use_fed_loss: bool = False,
        use_sigmoid_ce: bool = False,
        get_fed_loss_cls_weights: Optional[Callable[[], torch.Tensor]] = None,
        fed_loss_num_classes: int = 50,
    ):
        """
        Args:
            input_shape: shape of the per-RoI input features (or their channel count).
            box2box_transform: the box delta parameterization (Box2BoxTransform or
                Box2BoxTransformRotated).
            num_classes: number of foreground classes K.
            test_score_thresh, test_nms_thresh, test_topk_per_image: inference
                settings, see :func:`fast_rcnn_inference`.
            cls_agnostic_bbox_reg: one set of deltas for all classes.
            smooth_l1_beta: beta of the smooth L1 box loss (0: L1).
            box_reg_loss_type: "smooth_l1", "giou", "diou" or "ciou".
            loss_weight: a weight for every loss, or a dict of weights by loss name
                ("loss_cls", "loss_box_reg"; missing names weigh 1).
            use_fed_loss: the federated loss (needs ``use_sigmoid_ce``), for LVIS.
            use_sigmoid_ce: per-class sigmoid cross-entropy instead of softmax.
            get_fed_loss_cls_weights: returns the (K,) class weights of the federated
                loss's negative-class sampling; called once here.
            fed_loss_num_classes: classes per batch in the federated loss.
        """
        super().__init__()
        if isinstance(input_shape, int):
            input_shape = ShapeSpec(channels=input_shape)
        if num_classes < 1:
            raise ValueError(f"FastRCNNOutputLayers: num_classes must be >= 1, got {num_classes}")
        if box_reg_loss_type not in ("smooth_l1", "giou", "diou", "ciou"):
            raise ValueError(
                f"FastRCNNOutputLayers: box_reg_loss_type must be smooth_l1, giou, diou or ciou, got {box_reg_loss_type!r}"
            )
        self.num_classes = num_classes
        input_size = input_shape.channels * (input_shape.width or 1) * (input_shape.height or 1)
        # The background is the last class, K.
        self.cls_score = nn.Linear(input_size, num_classes + 1)
        num_bbox_reg_classes = 1 if cls_agnostic_bbox_reg else num_classes
        box_dim = len(box2box_transform.weights)
        self.bbox_pred = nn.Linear(input_size, num_bbox_reg_classes * box_dim)

        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        for layer in (self.cls_score, self.bbox_pred):
            nn.init.constant_(layer.bias, 0)

        self.box2box_transform = box2box_transform
        self.smooth_l1_beta = smooth_l1_beta
        self.test_score_thresh = test_score_thresh
        self.test_nms_thresh = test_nms_thresh
        self.test_topk_per_image = test_topk_per_image
        self.box_reg_loss_type = box_reg_loss_type
        if isinstance(loss_weight, (int, float)):
            loss_weight = {"loss_cls": float(loss_weight), "loss_box_reg": float(loss_weight)}
        self.loss_weight = loss_weight
        self.use_fed_loss = use_fed_loss
        self.use_sigmoid_ce = use_sigmoid_ce
        self.fed_loss_num_classes = fed_loss_num_classes

        if self.use_fed_loss:
            if not self.use_sigmoid_ce:
                raise ValueError("FastRCNNOutputLayers: use_fed_loss requires use_sigmoid_ce")
            if get_fed_loss_cls_weights is None:
                raise ValueError("FastRCNNOutputLayers: use_fed_loss requires get_fed_loss_cls_weights")
            fed_loss_cls_weights = torch.as_tensor(get_fed_loss_cls_weights())
            if len(fed_loss_cls_weights) != self.num_classes:
                raise ValueError(
                    f"FastRCNNOutputLayers: {len(fed_loss_cls_weights)} fed-loss class weights for "
                    f"{self.num_classes} classes"
                )
            self.register_buffer("fed_loss_cls_weights", fed_loss_cls_weights)

    @classmethod
    def from_config(cls, cfg, input_shape):
        box_head = cfg.MODEL.ROI_BOX_HEAD

        def fed_loss_weights():
            # Imported on use: only the federated loss needs the dataset catalogs.
            from detectron2.data.detection_utils import get_fed_loss_cls_weights

            return get_fed_loss_cls_weights(
                dataset_names=cfg.DATASETS.TRAIN, freq_weight_power=box_head.FED_LOSS_FREQ_WEIGHT_POWER
            )

        return {
            "input_shape": input_shape,
            "box2box_transform": cls._box2box_transform_from_config(cfg),
            "num_classes": cfg.MODEL.ROI_HEADS.NUM_CLASSES,
            "cls_agnostic_bbox_reg": box_head.CLS_AGNOSTIC_BBOX_REG,
            "smooth_l1_beta": box_head.SMOOTH_L1_BETA,
            "test_score_thresh": cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST,
            "test_nms_thresh": cfg.MODEL.ROI_HEADS.NMS_THRESH_TEST,
            "test_topk_per_image": cfg.TEST.DETECTIONS_PER_IMAGE,
            "box_reg_loss_type": box_head.BBOX_REG_LOSS_TYPE,
            "loss_weight": {"loss_box_reg": box_head.BBOX_REG_LOSS_WEIGHT},
            "use_fed_loss": box_head.USE_FED_LOSS,
            "use_sigmoid_ce": box_head.USE_SIGMOID_CE,
            "get_fed_loss_cls_weights": fed_loss_weights,
            "fed_loss_num_classes": box_head.FED_LOSS_NUM_CLASSES,
        }

    @classmethod
    def _box2box_transform_from_config(cls, cfg):
        # Subclasses for other box types (rotated) change only this.
        return Box2BoxTransform(weights=cfg.MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            x: (R, C) or (R, C, H, W) per-RoI features (flattened to (R, C*H*W)).

        Returns:
            scores: (R, K+1) class logits.
            proposal_deltas: (R, K*B) or (R, B) box deltas.
        """
        if x.dim() > 2:
            x = torch.flatten(x, start_dim=1)
        if x.dim() != 2 or x.shape[1] != self.cls_score.in_features:
            raise ValueError(
                f"FastRCNNOutputLayers: argument 'x' must hold {self.cls_score.in_features} features per RoI, "
                f"got shape {x.shape}"
            )
        return self.cls_score(x), self.bbox_pred(x)

    def losses(self, predictions, proposals: List[Instances]) -> Dict[str, torch.Tensor]:
        """
        Args:
            predictions: the (scores, proposal_deltas) returned by :meth:`forward`.
            proposals: per image, the RoIs that were predicted on, with fields
                ``proposal_boxes``, ``gt_classes`` and (for foreground RoIs) ``gt_boxes``.

        Returns:
            {"loss_cls", "loss_box_reg"}, weighted by ``loss_weight``.
        """
        scores, proposal_deltas = predictions
        for p in proposals:
            if not p.has("gt_classes"):
                raise ValueError("FastRCNNOutputLayers.losses: every proposal Instances needs a 'gt_classes' field")
        gt_classes = (
            cat([p.gt_classes for p in proposals], dim=0)
            if len(proposals)
            else torch.empty(0, dtype=torch.int64, device=scores.device)
        )
        _log_classification_stats(scores, gt_classes)

        if len(proposals):
            proposal_boxes = cat([p.proposal_boxes.tensor for p in proposals], dim=0)  # (R, B)
            if proposal_boxes.requires_grad:
                raise ValueError("FastRCNNOutputLayers.losses: proposal boxes must not require grad")
            # RoIs without a gt_boxes field are all background: their "gt" is unused.
            gt_boxes = cat([(p.gt_boxes if p.has("gt_boxes") else p.proposal_boxes).tensor for p in proposals], dim=0)
        else:
            box_dim = len(self.box2box_transform.weights)
            proposal_boxes = gt_boxes = torch.empty((0, box_dim), device=proposal_deltas.device)

        if self.use_sigmoid_ce:
            loss_cls = self.sigmoid_cross_entropy_loss(scores, gt_classes)
        else:
            loss_cls = cross_entropy(scores, gt_classes, reduction="mean")

        losses = {
            "loss_cls": loss_cls,
            "loss_box_reg": self.box_reg_loss(proposal_boxes, gt_boxes, proposal_deltas, gt_classes),
        }
        return {k: v * self.loss_weight.get(k, 1.0) for k, v in losses.items()}

    def get_fed_loss_classes(
        self, gt_classes: torch.Tensor, num_fed_loss_classes: int, num_classes: int, weight: torch.Tensor
    ) -> torch.Tensor:
        """The classes the federated loss is computed on: every class present in
        ``gt_classes`` plus negatives sampled (without replacement, by ``weight``) up to
        ``num_fed_loss_classes`` classes in all (Zhou et al., CenterNet2)."""
        unique_gt_classes = torch.unique(gt_classes)
        prob = unique_gt_classes.new_ones(num_classes + 1).float()
        prob[-1] = 0  # never sample the background
        if len(unique_gt_classes) >= num_fed_loss_classes:
            return unique_gt_classes
        prob[:num_classes] = weight.float().clone()
        prob[unique_gt_classes] = 0
        sampled_negative_classes = torch.multinomial(
            prob, num_fed_loss_classes - len(unique_gt_classes), replacement=False
        )
        return torch.cat([unique_gt_classes, sampled_negative_classes])

    def sigmoid_cross_entropy_loss(self, pred_class_logits: torch.Tensor, gt_classes: torch.Tensor) -> torch.Tensor:
        """Binary cross-entropy per foreground class, summed over classes and averaged
        over RoIs; with the federated loss only the sampled classes count."""
        if pred_class_logits.numel() == 0:
            return pred_class_logits.new_zeros([1])[0]
        num_rois = pred_class_logits.shape[0]
        num_classes = pred_class_logits.shape[1] - 1

        target = pred_class_logits.new_zeros(num_rois, num_classes + 1)
        target[torch.arange(len(gt_classes), device=gt_classes.device), gt_classes] = 1
        target = target[:, :num_classes]  # background RoIs have all-zero targets
        cls_loss = F.binary_cross_entropy_with_logits(pred_class_logits[:, :-1], target, reduction="none")

        if self.use_fed_loss:
            fed_loss_classes = self.get_fed_loss_classes(
                gt_classes, self.fed_loss_num_classes, num_classes, self.fed_loss_cls_weights
            )
            class_mask = fed_loss_classes.new_zeros(num_classes + 1)
            class_mask[fed_loss_classes] = 1
            weight = class_mask[:num_classes].view(1, num_classes).expand(num_rois, num_classes).float()
            cls_loss = cls_loss * weight
        return torch.sum(cls_loss) / num_rois

    def box_reg_loss(
        self,
        proposal_boxes: torch.Tensor,
        gt_boxes: torch.Tensor,
        pred_deltas: torch.Tensor,
        gt_classes: torch.Tensor,
    ) -> torch.Tensor:
        """Box regression loss of the foreground RoIs (using the deltas of their gt
        class), normalized by the number of all RoIs.

        Args:
            proposal_boxes, gt_boxes: (R, B).
            pred_deltas: (R, B) or (R, K*B).
            gt_classes: (R,), background = K.
        """
        box_dim = proposal_boxes.shape[1]
        fg_inds = nonzero_tuple((gt_classes >= 0) & (gt_classes < self.num_classes))[0]
        if pred_deltas.shape[1] == box_dim:  # class-agnostic
            fg_pred_deltas = pred_deltas[fg_inds]
        else:
            fg_pred_deltas = pred_deltas.view(-1, self.num_classes, box_dim)[fg_inds, gt_classes[fg_inds]]

        loss_box_reg = _dense_box_regression_loss(
            [proposal_boxes[fg_inds]],
            self.box2box_transform,
            [fg_pred_deltas.unsqueeze(0)],
            [gt_boxes[fg_inds]],
            ...,
            self.box_reg_loss_type,
            self.smooth_l1_beta,
        )
        # Normalizing by all RoIs (not the foreground ones) weighs each RoI equally,
        # as in Detectron and upstream.
        return loss_box_reg / max(gt_classes.numel(), 1.0)

    def inference(self, predictions: Tuple[torch.Tensor, torch.Tensor], proposals: List[Instances]) -> Tuple[List[Instances], List[torch.Tensor]]:
        """Detections per image (see :func:`fast_rcnn_inference`), from the predictions
        on ``proposals`` (which need ``proposal_boxes``)."""
        boxes = self.predict_boxes(predictions, proposals)
        scores = self.predict_probs(predictions, proposals)
        image_shapes = [x.image_size for x in proposals]
        return fast_rcnn_inference(
            boxes, scores, image_shapes, self.test_score_thresh, self.test_nms_thresh, self.test_topk_per_image
        )

    def predict_boxes_for_gt_classes(self, predictions, proposals: List[Instances]) -> List[torch.Tensor]:
        """Per image, (Ri, B) boxes decoded with the deltas of each RoI's gt class
        (its ``gt_classes`` field; background takes the last class's deltas)."""
        if not len(proposals):
            return []
        _, proposal_deltas = predictions
        proposal_boxes = cat([p.proposal_boxes.tensor for p in proposals], dim=0)
        num_rois, box_dim = proposal_boxes.shape
        predict_boxes = self.box2box_transform.apply_deltas(proposal_deltas, proposal_boxes)  # (R, K*B)

        num_pred_classes = predict_boxes.shape[1] // box_dim
        if num_pred_classes > 1:
            gt_classes = torch.cat([p.gt_classes for p in proposals], dim=0)
            gt_classes = gt_classes.clamp(0, num_pred_classes - 1)
            rows = torch.arange(num_rois, dtype=torch.long, device=predict_boxes.device)
            predict_boxes = predict_boxes.view(num_rois, num_pred_classes, box_dim)[rows, gt_classes]
        return list(predict_boxes.split([len(p) for p in proposals]))

    def predict_boxes(self, predictions: Tuple[torch.Tensor, torch.Tensor], proposals: List[Instances]) -> List[torch.Tensor]:
        """Per image, (Ri, K*B) (or (Ri, B) class-agnostic) decoded boxes."""
        if not len(proposals):
            return []
        _, proposal_deltas = predictions
        proposal_boxes = cat([p.proposal_boxes.tensor for p in proposals], dim=0)
        if proposal_boxes.shape[0] != proposal_deltas.shape[0]:
            raise ValueError(
                f"{proposal_deltas.shape[0]} box predictions for {proposal_boxes.shape[0]} proposals"
            )
        predict_boxes = self.box2box_transform.apply_deltas(proposal_deltas, proposal_boxes)
        return list(predict_boxes.split([len(p) for p in proposals]))

    def predict_probs(self, predictions: Tuple[torch.Tensor, torch.Tensor], proposals: List[Instances]) -> List[torch.Tensor]:
        """Per image, (Ri, K+1) class probabilities (softmax, or per-class sigmoid)."""
        scores, _ = predictions
        if self.use_sigmoid_ce:
            probs = scores.sigmoid()
        else:
            probs = F.softmax(scores, dim=-1)
        return list(probs.split([len(p) for p in proposals], dim=0))
