"""Test-time augmentation for R-CNN: run the model on resized and flipped copies of an
image, map the boxes back, merge them with NMS, and average the masks predicted for the
merged boxes."""
import copy
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from fvcore.transforms import HFlipTransform, NoOpTransform, Transform, TransformList
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from detectron2.config import configurable
from detectron2.data.detection_utils import read_image
from detectron2.data.transforms import RandomFlip, ResizeShortestEdge, ResizeTransform, apply_augmentations
from detectron2.structures import Boxes, Instances

from .meta_arch import GeneralizedRCNN
from .postprocessing import detector_postprocess
from .roi_heads.fast_rcnn import fast_rcnn_inference_single_image

__all__ = ["DatasetMapperTTA", "GeneralizedRCNNWithTTA"]


class DatasetMapperTTA:
    """Turns one model input (a dict with a CHW "image" and the wanted output "height"
    and "width") into its augmented copies: one per size in `min_sizes`, each also
    flipped horizontally when `flip`. Each copy carries "transforms": the TransformList
    from the original-resolution image to the copy."""

    @configurable
    def __init__(self, min_sizes: List[int], max_size: int, flip: bool = True):
        """
        Args:
            min_sizes: shorter-edge lengths to resize to.
            max_size: the longest edge never exceeds this.
            flip: also run a horizontally flipped copy of every size.
        """
        self.min_sizes = min_sizes
        self.max_size = max_size
        self.flip = flip

    @classmethod
    def from_config(cls, cfg) -> Dict:
        return {"min_sizes": cfg.TEST.AUG.MIN_SIZES, "max_size": cfg.TEST.AUG.MAX_SIZE, "flip": cfg.TEST.AUG.FLIP}

    def __call__(self, dataset_dict: Dict) -> List[Dict]:
        image = dataset_dict["image"].permute(1, 2, 0).numpy()
        orig_shape = (dataset_dict["height"], dataset_dict["width"])
        # The input may already be resized: start the transforms at the original size.
        if tuple(image.shape[:2]) != tuple(orig_shape):
            pre_tfm: Transform = ResizeTransform(orig_shape[0], orig_shape[1], image.shape[0], image.shape[1])
        else:
            pre_tfm = NoOpTransform()

        candidates = []
        for min_size in self.min_sizes:
            resize = ResizeShortestEdge(min_size, self.max_size)
            candidates.append([resize])
            if self.flip:
                candidates.append([resize, RandomFlip(prob=1.0)])

        ret = []
        for augs in candidates:
            new_image, tfms = apply_augmentations(augs, np.copy(image))
            out = copy.deepcopy(dataset_dict)
            out["transforms"] = TransformList([pre_tfm]) + tfms
            out["image"] = torch.from_numpy(np.ascontiguousarray(new_image.transpose(2, 0, 1)))
            ret.append(out)
        return ret


class GeneralizedRCNNWithTTA(nn.Module):
    """A GeneralizedRCNN run with test-time augmentation; use it like the model at
    inference: ``outputs = GeneralizedRCNNWithTTA(cfg, model)(batched_inputs)``.

    Boxes of all augmented copies are mapped back to the original image and merged by
    per-class NMS; with MODEL.MASK_ON, masks are predicted for the merged boxes on every
    copy and averaged. Keypoints and precomputed proposals are not supported.
    """

    def __init__(self, cfg, model: GeneralizedRCNN, tta_mapper=None, batch_size: int = 3):
        """
        Args:
            cfg: the model's config (TEST.AUG.*, ROI_HEADS.NMS_THRESH_TEST, ...).
            model: a GeneralizedRCNN, possibly wrapped in DistributedDataParallel.
            tta_mapper: makes the augmented inputs (default DatasetMapperTTA(cfg)).
            batch_size: augmented inputs per forward pass.
        """
        super().__init__()
        if isinstance(model, DistributedDataParallel):
            model = model.module
        if not isinstance(model, GeneralizedRCNN):
            raise TypeError(f"GeneralizedRCNNWithTTA: model must be a GeneralizedRCNN, got {type(model)}")
        if cfg.MODEL.KEYPOINT_ON:
            raise ValueError("GeneralizedRCNNWithTTA: TTA for keypoints is not supported (cfg.MODEL.KEYPOINT_ON)")
        if cfg.MODEL.LOAD_PROPOSALS:
            raise ValueError(
                "GeneralizedRCNNWithTTA: TTA with precomputed proposals is not supported (cfg.MODEL.LOAD_PROPOSALS)"
            )
        self.cfg = cfg.clone()
        self.model = model
        self.tta_mapper = tta_mapper if tta_mapper is not None else DatasetMapperTTA(cfg)
        self.batch_size = batch_size

    @contextmanager
    def _turn_off_roi_heads(self, attrs: Sequence[str]) -> Iterator[None]:
        """Temporarily set the named boolean attributes of the ROI heads (e.g.
        "mask_on") to False; attributes the heads do not have are ignored."""
        roi_heads = self.model.roi_heads
        saved = {a: getattr(roi_heads, a) for a in attrs if hasattr(roi_heads, a)}
        for a in saved:
            setattr(roi_heads, a, False)
        try:
            yield
        finally:
            for a, v in saved.items():
                setattr(roi_heads, a, v)

    def _batch_inference(
        self, batched_inputs: List[Dict], detected_instances: Optional[List[Instances]] = None
    ) -> List[Instances]:
        """model.inference (without postprocessing) in chunks of batch_size."""
        outputs: List[Instances] = []
        for start in range(0, len(batched_inputs), self.batch_size):
            inputs = batched_inputs[start : start + self.batch_size]
            given = None if detected_instances is None else detected_instances[start : start + self.batch_size]
            outputs.extend(self.model.inference(inputs, given, do_postprocess=False))
        return outputs

    def __call__(self, batched_inputs: List[Dict]) -> List[Dict[str, Instances]]:
        """Same inputs and outputs as GeneralizedRCNN.forward at inference; an input may
        give "file_name" instead of "image"."""
        return [self._inference_one_image(self._maybe_read_image(x)) for x in batched_inputs]

    def _maybe_read_image(self, dataset_dict: Dict) -> Dict:
        ret = copy.copy(dataset_dict)
        if "image" not in ret:
            image = read_image(ret.pop("file_name"), self.model.input_format)
            ret["image"] = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if "height" not in ret and "width" not in ret:
            ret["height"], ret["width"] = ret["image"].shape[1], ret["image"].shape[2]
        return ret

    def _inference_one_image(self, inputs: Dict) -> Dict[str, Instances]:
        orig_shape = (inputs["height"], inputs["width"])
        augmented_inputs, tfms = self._get_augmented_inputs(inputs)
        # Boxes first, without masks/keypoints: those are computed on the merged boxes.
        with self._turn_off_roi_heads(["mask_on", "keypoint_on"]):
            all_boxes, all_scores, all_classes = self._get_augmented_boxes(augmented_inputs, tfms)
        merged = self._merge_detections(all_boxes, all_scores, all_classes, orig_shape)
        if not self.cfg.MODEL.MASK_ON:
            return {"instances": merged}
        augmented_instances = self._rescale_detected_boxes(augmented_inputs, merged, tfms)
        outputs = self._batch_inference(augmented_inputs, augmented_instances)
        merged.pred_masks = self._reduce_pred_masks(outputs, tfms)
        return {"instances": detector_postprocess(merged, *orig_shape)}

    def _get_augmented_inputs(self, inputs: Dict) -> Tuple[List[Dict], List[TransformList]]:
        augmented_inputs = self.tta_mapper(inputs)
        tfms = [x.pop("transforms") for x in augmented_inputs]
        return augmented_inputs, tfms

    def _get_augmented_boxes(
        self, augmented_inputs: List[Dict], tfms: List[TransformList]
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """All detections of all copies, boxes mapped back to the original image."""
        outputs = self._batch_inference(augmented_inputs)
        boxes, scores, classes = [], [], []
        for output, tfm in zip(outputs, tfms):
            pred = output.pred_boxes.tensor
            back = tfm.inverse().apply_box(pred.detach().cpu().numpy())
            boxes.append(torch.as_tensor(back, dtype=pred.dtype).to(pred.device))
            scores.append(output.scores)
            classes.append(output.pred_classes)
        return torch.cat(boxes, dim=0), torch.cat(scores, dim=0), torch.cat(classes, dim=0)

    def _merge_detections(
        self, all_boxes: torch.Tensor, all_scores: torch.Tensor, all_classes: torch.Tensor, shape_hw: Tuple[int, int]
    ) -> Instances:
        """Per-class NMS over the detections of every copy."""
        num_classes = self.cfg.MODEL.ROI_HEADS.NUM_CLASSES
        # One score column per class plus background, as fast_rcnn_inference expects.
        scores_2d = torch.zeros(len(all_boxes), num_classes + 1, device=all_boxes.device, dtype=all_scores.dtype)
        scores_2d[torch.arange(len(all_boxes), device=all_boxes.device), all_classes] = all_scores
        merged, _ = fast_rcnn_inference_single_image(
            all_boxes,
            scores_2d,
            shape_hw,
            1e-8,
            self.cfg.MODEL.ROI_HEADS.NMS_THRESH_TEST,
            self.cfg.TEST.DETECTIONS_PER_IMAGE,
        )
        return merged

    def _rescale_detected_boxes(
        self, augmented_inputs: List[Dict], merged: Instances, tfms: List[TransformList]
    ) -> List[Instances]:
        """The merged detections in the coordinates of each augmented copy."""
        boxes = merged.pred_boxes.tensor.detach().cpu().numpy()
        ret = []
        for inputs, tfm in zip(augmented_inputs, tfms):
            moved = torch.as_tensor(tfm.apply_box(boxes), dtype=torch.float32)
            ret.append(
                Instances(
                    tuple(inputs["image"].shape[1:3]),
                    pred_boxes=Boxes(moved),
                    pred_classes=merged.pred_classes,
                    scores=merged.scores,
                )
            )
        return ret

    def _reduce_pred_masks(self, outputs: List[Instances], tfms: List[TransformList]) -> torch.Tensor:
        """Average the per-box mask predictions of all copies; a copy that was flipped
        predicted mirrored box-relative masks, so they are flipped back first."""
        masks = []
        for output, tfm in zip(outputs, tfms):
            m = output.pred_masks
            if sum(isinstance(t, HFlipTransform) for t in tfm.transforms) % 2 == 1:
                m = m.flip(dims=[3])
            masks.append(m)
        return torch.stack(masks, dim=0).mean(dim=0)
