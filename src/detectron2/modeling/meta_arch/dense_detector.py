"""The base class of one-stage ("dense") detectors, which predict classes and boxes at
every position of every feature level (RetinaNet, FCOS)."""
from abc import ABCMeta, abstractmethod
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from detectron2.layers import batched_nms, move_device_like
from detectron2.structures import Boxes, ImageList, Instances
from detectron2.utils.events import get_event_storage

from ..backbone import Backbone
from ..postprocessing import detector_postprocess

__all__ = ["DenseDetector", "permute_to_N_HWA_K"]


def permute_to_N_HWA_K(tensor: Tensor, K: int) -> Tensor:
    """Reshape a head output (N, A*K, H, W) to (N, H*W*A, K): one row per anchor, in
    the (y, x, anchor) order of the anchor generator."""
    if tensor.dim() != 4:
        raise ValueError(f"permute_to_N_HWA_K: tensor must be (N, A*K, H, W), got shape {tensor.shape}")
    n, _, h, w = tensor.shape
    return tensor.view(n, -1, K, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, K)


def sigmoid_focal_loss(
    inputs: Tensor, targets: Tensor, alpha: float = -1, gamma: float = 2, reduction: str = "none"
) -> Tensor:
    """The focal loss of Lin et al. (2017): binary cross-entropy on logits, scaled by
    (1 - p_t)^gamma to down-weight easy examples and, when ``alpha`` >= 0, by alpha
    for positives and 1 - alpha for negatives. Same definition as fvcore's
    sigmoid_focal_loss (kept here so that importing the model does not import
    fvcore.nn, which scripts its losses at import time)."""
    p = torch.sigmoid(inputs)
    ce = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction != "none":
        raise ValueError(f"sigmoid_focal_loss: reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    return loss


def check_batched_inputs(batched_inputs: Sequence[Dict], owner: str) -> None:
    """Validate the list-of-dicts model input, so that a wrong call fails with a message
    instead of deep inside the backbone."""
    if not isinstance(batched_inputs, (list, tuple)) or len(batched_inputs) == 0:
        raise TypeError(f"{owner}: batched_inputs must be a non-empty list of dicts, got {type(batched_inputs).__name__}")
    for i, x in enumerate(batched_inputs):
        if not isinstance(x, dict) or "image" not in x:
            raise TypeError(f"{owner}: batched_inputs[{i}] must be a dict with an 'image' tensor")
        image = x["image"]
        if not isinstance(image, torch.Tensor):
            raise TypeError(f"{owner}: batched_inputs[{i}]['image'] must be a torch.Tensor, got {type(image).__name__}")
        if image.dim() != 3:
            raise ValueError(f"{owner}: batched_inputs[{i}]['image'] must be (C, H, W), got shape {image.shape}")


class DenseDetector(nn.Module, metaclass=ABCMeta):
    """A backbone and a head applied to each of its feature levels. Subclasses implement
    ``forward_training`` (losses) and ``forward_inference`` (Instances per image)."""

    def __init__(
        self,
        backbone: Backbone,
        head: nn.Module,
        head_in_features: Optional[List[str]] = None,
        *,
        pixel_mean: Tuple[float, ...],
        pixel_std: Tuple[float, ...],
    ):
        """
        Args:
            backbone: the feature extractor.
            head: maps a list of feature maps to a list of predictions, each a list of
                (N, A*K, H_l, W_l) tensors over the levels.
            head_in_features: backbone outputs fed to the head; all of them, by
                increasing stride, when None.
            pixel_mean, pixel_std: per-channel input normalization.
        """
        super().__init__()
        self.backbone = backbone
        self.head = head
        if head_in_features is None:
            shapes = self.backbone.output_shape()
            head_in_features = sorted(shapes.keys(), key=lambda name: shapes[name].stride)
        self.head_in_features = list(head_in_features)
        if len(pixel_mean) != len(pixel_std):
            raise ValueError(f"pixel_mean ({len(pixel_mean)} values) and pixel_std ({len(pixel_std)}) differ in length")
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def _move_to_current_device(self, x: Tensor) -> Tensor:
        return move_device_like(x, self.pixel_mean)

    def forward(self, batched_inputs: List[Dict[str, Tensor]]):
        """
        Args:
            batched_inputs: one dict per image with "image" (C, H, W) in the model's
                input format, optional "height"/"width" of the wanted output, and in
                training "instances" (gt_boxes, gt_classes).

        Returns:
            training: dict of losses. Inference: one dict per image with "instances"
            (pred_boxes, scores, pred_classes) rescaled to "height" x "width".
        """
        if not torch.jit.is_scripting():
            check_batched_inputs(batched_inputs, type(self).__name__)
        images = self.preprocess_image(batched_inputs)
        features = self.backbone(images.tensor)
        features = [features[f] for f in self.head_in_features]
        predictions = self.head(features)

        if self.training:
            assert not torch.jit.is_scripting(), "Scripting is not supported in training"
            if "instances" not in batched_inputs[0]:
                raise ValueError(f"{type(self).__name__}: training needs 'instances' in every input dict")
            gt_instances = [x["instances"].to(self.device) for x in batched_inputs]
            return self.forward_training(images, features, predictions, gt_instances)

        results = self.forward_inference(images, features, predictions)
        if torch.jit.is_scripting():
            return results
        processed_results = []
        for results_per_image, input_per_image, image_size in zip(results, batched_inputs, images.image_sizes):
            height = input_per_image.get("height", image_size[0])
            width = input_per_image.get("width", image_size[1])
            processed_results.append({"instances": detector_postprocess(results_per_image, height, width)})
        return processed_results

    @abstractmethod
    def forward_training(
        self, images: ImageList, features: List[Tensor], predictions, gt_instances: List[Instances]
    ) -> Dict[str, Tensor]:
        """Losses of the dense predictions."""

    @abstractmethod
    def forward_inference(self, images: ImageList, features: List[Tensor], predictions) -> List[Instances]:
        """Detections per image, at the network input resolution."""

    def preprocess_image(self, batched_inputs: List[Dict[str, Tensor]]) -> ImageList:
        """Normalize, pad and batch the input images."""
        images = [self._move_to_current_device(x["image"]) for x in batched_inputs]
        images = [(x - self.pixel_mean) / self.pixel_std for x in images]
        return ImageList.from_tensors(
            images, self.backbone.size_divisibility, padding_constraints=self.backbone.padding_constraints
        )

    def _transpose_dense_predictions(
        self, predictions: List[List[Tensor]], dims_per_anchor: List[int]
    ) -> List[List[Tensor]]:
        """Turn every (N, A*K, H, W) head output into (N, H*W*A, K).

        Args:
            predictions: per kind of prediction (e.g. logits, deltas), a list over levels.
            dims_per_anchor: K of each kind, e.g. [num_classes, 4].
        """
        if len(predictions) != len(dims_per_anchor):
            raise ValueError(
                f"_transpose_dense_predictions: {len(predictions)} predictions but {len(dims_per_anchor)} dims"
            )
        res: List[List[Tensor]] = []
        for pred, dim_per_anchor in zip(predictions, dims_per_anchor):
            res.append([permute_to_N_HWA_K(x, dim_per_anchor) for x in pred])
        return res

    def _ema_update(self, name: str, value: float, initial_value: float, momentum: float = 0.9) -> float:
        """Exponential moving average kept as attribute ``name`` (e.g. the loss
        normalizer, which smooths the number of foreground anchors across iterations)."""
        old = getattr(self, name) if hasattr(self, name) else initial_value
        new = old * momentum + value * (1 - momentum)
        setattr(self, name, new)
        return new

    def _decode_per_level_predictions(
        self,
        anchors: Boxes,
        pred_scores: Tensor,
        pred_deltas: Tensor,
        score_thresh: float,
        topk_candidates: int,
        image_size: Tuple[int, int],
    ) -> Instances:
        """Decode one level of one image: keep (anchor, class) pairs scoring above
        ``score_thresh``, at most ``topk_candidates`` best of them, and apply their deltas.

        Args:
            anchors: (R, 4) anchors of the level.
            pred_scores: (R, K) class probabilities.
            pred_deltas: (R, 4) box deltas.
        """
        keep = pred_scores > score_thresh
        pred_scores = pred_scores[keep]
        candidates = torch.nonzero(keep)  # (M, 2): anchor index, class index

        num_candidates = candidates.shape[0]
        if isinstance(num_candidates, Tensor):  # a tensor while tracing
            num_topk = torch.clamp(num_candidates, max=topk_candidates)
        else:
            num_topk = min(num_candidates, topk_candidates)
        pred_scores, order = pred_scores.topk(num_topk)
        anchor_idxs, class_idxs = candidates[order].unbind(dim=1)

        pred_boxes = self.box2box_transform.apply_deltas(pred_deltas[anchor_idxs], anchors.tensor[anchor_idxs])
        return Instances(image_size, pred_boxes=Boxes(pred_boxes), scores=pred_scores, pred_classes=class_idxs)

    def _decode_multi_level_predictions(
        self,
        anchors: List[Boxes],
        pred_scores: List[Tensor],
        pred_deltas: List[Tensor],
        score_thresh: float,
        topk_candidates: int,
        image_size: Tuple[int, int],
    ) -> Instances:
        """_decode_per_level_predictions over all levels of one image, concatenated."""
        per_level = [
            self._decode_per_level_predictions(
                anchors_l, scores_l, deltas_l, score_thresh, topk_candidates, image_size
            )
            for scores_l, deltas_l, anchors_l in zip(pred_scores, pred_deltas, anchors)
        ]
        return per_level[0].cat(per_level)

    def _decode_and_nms(
        self, anchors: List[Boxes], pred_scores: List[Tensor], pred_deltas: List[Tensor], image_size: Tuple[int, int]
    ) -> Instances:
        """Decode all levels of one image with the detector's test_score_thresh and
        test_topk_candidates, then per-class NMS (test_nms_thresh) and keep the
        max_detections_per_image best."""
        pred = self._decode_multi_level_predictions(
            anchors, pred_scores, pred_deltas, self.test_score_thresh, self.test_topk_candidates, image_size
        )
        keep = batched_nms(pred.pred_boxes.tensor, pred.scores, pred.pred_classes, self.test_nms_thresh)
        return pred[keep[: self.max_detections_per_image]]

    def visualize_training(self, batched_inputs: List[Dict], results: List[Instances]) -> None:
        """Store in the event storage the first image of the batch with its ground-truth
        boxes (top) above its 20 highest-scoring detections (bottom); needs
        ``self.input_format``."""
        from detectron2.data.detection_utils import convert_image_to_rgb
        from detectron2.utils.visualizer import Visualizer

        if len(batched_inputs) != len(results):
            raise ValueError("visualize_training: batched_inputs and results differ in length")
        storage = get_event_storage()
        max_boxes = 20
        inputs, result = batched_inputs[0], results[0]
        img = convert_image_to_rgb(inputs["image"].permute(1, 2, 0), self.input_format)
        anno_img = Visualizer(img, None).overlay_instances(boxes=inputs["instances"].gt_boxes).get_image()
        processed = detector_postprocess(result, img.shape[0], img.shape[1])
        pred_boxes = processed.pred_boxes.tensor[:max_boxes].detach().cpu().numpy()
        pred_img = Visualizer(img, None).overlay_instances(boxes=pred_boxes).get_image()
        vis_img = np.vstack((anno_img, pred_img)).transpose(2, 0, 1)
        storage.put_image(f"Top: GT bounding boxes; Bottom: {max_boxes} Highest Scoring Results", vis_img)
