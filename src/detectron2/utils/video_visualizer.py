"""Visualise predictions frame by frame with colours that stay with an instance: each
frame's instances are matched to the previous frames' by IoU and inherit their colour."""
from typing import Any, List, Optional

import numpy as np
import pycocotools.mask as mask_util
import torch

from detectron2.structures import Boxes, pairwise_iou

from .colormap import random_color, random_colors
from .visualizer import ColorMode, Visualizer, VisImage, _create_text_labels, _meta, _PanopticPrediction

__all__ = ["VideoVisualizer"]

# IoU above which an instance counts as the same object as one of an earlier frame
_BOX_MATCH_IOU = 0.6
_MASK_MATCH_IOU = 0.5


class _DetectedInstance:
    """An instance remembered across frames: its class, box or mask, colour, and how
    many more frames it is kept while unmatched (ttl)."""

    __slots__ = ["label", "bbox", "mask_rle", "color", "ttl"]

    def __init__(self, label: int, bbox: Optional[np.ndarray], mask_rle: Optional[dict],
                 color: Optional[Any], ttl: int):
        self.label = label
        self.bbox = bbox
        self.mask_rle = mask_rle
        self.color = color
        self.ttl = ttl


class VideoVisualizer:
    def __init__(self, metadata: Any, instance_mode: ColorMode = ColorMode.IMAGE):
        """
        Args:
            metadata: dataset metadata (duck-typed, see ``Visualizer``). Optional fields
                ``max_num_instances`` (size of the colour pool, default 74) and
                ``assign_colors_by_id`` (colour by the predictions' ``ID`` field).
            instance_mode: ColorMode.IMAGE or ColorMode.IMAGE_BW.
        """
        if instance_mode not in (ColorMode.IMAGE, ColorMode.IMAGE_BW):
            raise ValueError(f"VideoVisualizer: instance_mode must be ColorMode.IMAGE or IMAGE_BW, got {instance_mode}")
        self.metadata = metadata
        self._old_instances: List[_DetectedInstance] = []
        self._instance_mode = instance_mode
        self._max_num_instances = _meta(metadata, "max_num_instances", 74)
        self._assign_colors_by_id = _meta(metadata, "assign_colors_by_id", False)
        self._color_pool = random_colors(self._max_num_instances, rgb=True, maximum=1)
        self._color_of_id = {}

    def draw_instance_predictions(self, frame: np.ndarray, predictions: Any) -> VisImage:
        """Draw one frame's instance predictions; boxes are left out when masks exist.

        Args:
            frame: HxWx3 RGB image.
            predictions (Instances): as for ``Visualizer.draw_instance_predictions``.
        """
        vis = Visualizer(frame, self.metadata)
        n = len(predictions)
        if n == 0:
            return vis.output
        boxes = predictions.pred_boxes.tensor.detach().cpu().numpy() if predictions.has("pred_boxes") else None
        scores = predictions.scores if predictions.has("scores") else None
        classes = predictions.pred_classes.cpu().numpy() if predictions.has("pred_classes") else np.zeros(n, dtype=int)
        keypoints = predictions.pred_keypoints if predictions.has("pred_keypoints") else None
        masks = None
        if predictions.has("pred_masks"):
            masks = np.asarray(torch.as_tensor(predictions.pred_masks).cpu(), dtype=np.uint8)

        if self._assign_colors_by_id and predictions.has("ID"):
            colors = self._colors_by_id(predictions.ID)
        else:
            rles = mask_util.encode(np.asfortranarray(masks.transpose(1, 2, 0))) if masks is not None else [None] * n
            detected = [
                _DetectedInstance(int(classes[i]), None if masks is not None else boxes[i], rles[i], None, ttl=8)
                for i in range(n)
            ]
            colors = self._assign_colors(detected)

        labels = _create_text_labels(classes.tolist(), scores, _meta(self.metadata, "thing_classes"))
        alpha = 0.5
        if self._instance_mode == ColorMode.IMAGE_BW:
            foreground = masks.any(axis=0) > 0 if masks is not None else None
            vis.output.reset_image(vis._create_grayscale_image(foreground))
            alpha = 0.3
        vis.overlay_instances(boxes=None if masks is not None else boxes, masks=masks, labels=labels,
                              keypoints=keypoints, assigned_colors=colors, alpha=alpha)
        return vis.output

    def draw_sem_seg(self, frame: np.ndarray, sem_seg: Any, area_threshold: Optional[int] = None) -> VisImage:
        """Draw a semantic segmentation (class colours come from the metadata, so they
        are already consistent across frames)."""
        vis = Visualizer(frame, self.metadata)
        vis.draw_sem_seg(sem_seg, area_threshold=area_threshold)
        return vis.output

    def draw_panoptic_seg(self, frame: np.ndarray, panoptic_seg: Any, segments_info: Optional[List[dict]],
                          area_threshold: Optional[int] = None, alpha: float = 0.5) -> VisImage:
        """Draw a panoptic segmentation; thing segments keep their colour across frames."""
        vis = Visualizer(frame, self.metadata, instance_mode=self._instance_mode)
        things = vis._draw_panoptic_stuff(_PanopticPrediction(panoptic_seg, segments_info, self.metadata),
                                          area_threshold, alpha)
        if not things:
            return vis.output
        masks, sinfos = zip(*things)
        rles = mask_util.encode(np.asfortranarray(np.stack(masks, axis=2).astype(np.uint8)))
        detected = [_DetectedInstance(s["category_id"], None, rles[i], None, ttl=8) for i, s in enumerate(sinfos)]
        colors = self._assign_colors(detected)
        thing_names = _meta(self.metadata, "thing_classes")
        labels = [thing_names[s["category_id"]] if thing_names else str(s["category_id"]) for s in sinfos]
        vis.overlay_instances(masks=list(masks), labels=labels, assigned_colors=colors, alpha=alpha)
        return vis.output

    def _assign_colors(self, instances: List[_DetectedInstance]) -> List[Any]:
        """Give each new instance the colour of the remembered instance of the same class
        it overlaps most (above a threshold), or a colour not in use. Unmatched
        remembered instances are kept for ``ttl`` more frames (short occlusions)."""
        ious = self._match_ious(self._old_instances, instances)
        threshold = _MASK_MATCH_IOU if instances[0].bbox is None else _BOX_MATCH_IOU
        kept = []
        if ious.size:
            best_new, best_iou = ious.argmax(axis=1), ious.max(axis=1)
        for k, old in enumerate(self._old_instances):
            if ious.size and best_iou[k] > threshold and instances[best_new[k]].color is None:
                instances[best_new[k]].color = old.color
                continue
            old.ttl -= 1
            if old.ttl > 0:
                kept.append(old)
        in_use = {tuple(np.round(x.color, 6)) for x in kept} | {tuple(np.round(x.color, 6)) for x in instances if x.color is not None}
        for inst in instances:
            if inst.color is None:
                inst.color = self._unused_color(in_use)
                in_use.add(tuple(np.round(inst.color, 6)))
        self._old_instances = instances[:] + kept
        return [inst.color for inst in instances]

    @staticmethod
    def _match_ious(old: List[_DetectedInstance], new: List[_DetectedInstance]) -> np.ndarray:
        """IoU of every remembered instance with every new one; 0 across classes."""
        if not old or not new:
            return np.zeros((len(old), len(new)), dtype=np.float32)
        if new[0].bbox is None or old[0].bbox is None:
            if any(x.mask_rle is None for x in old + new):
                return np.zeros((len(old), len(new)), dtype=np.float32)
            ious = np.asarray(mask_util.iou([x.mask_rle for x in old], [x.mask_rle for x in new], [0] * len(new)))
        else:
            to_boxes = lambda xs: Boxes(torch.as_tensor(np.stack([x.bbox for x in xs]), dtype=torch.float32))  # noqa: E731
            ious = pairwise_iou(to_boxes(old), to_boxes(new)).numpy()
        ious = ious.reshape(len(old), len(new)).astype(np.float32)
        same_class = np.array([[a.label == b.label for b in new] for a in old])
        return ious * same_class

    def _unused_color(self, in_use: set) -> Any:
        for color in self._color_pool:
            if tuple(np.round(color, 6)) not in in_use:
                return color
        return random_color(rgb=True, maximum=1)

    def _colors_by_id(self, ids: Any) -> List[Any]:
        """A fixed colour per track id (from the predictions' ``ID`` field)."""
        colors = []
        for track_id in torch.as_tensor(ids).tolist():
            if track_id not in self._color_of_id:
                self._color_of_id[track_id] = self._color_pool[len(self._color_of_id) % len(self._color_pool)]
            colors.append(self._color_of_id[track_id])
        return colors
