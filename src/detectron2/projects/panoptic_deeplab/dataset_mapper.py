"""The training mapper of Panoptic-DeepLab: augment image and panoptic png together,
then generate the semantic / center / offset targets."""
import copy
import logging
from typing import Callable, Dict, List, Union

import numpy as np
import torch

from detectron2.config import configurable
from detectron2.data import MetadataCatalog
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T

from .target_generator import PanopticDeepLabTargetGenerator

__all__ = ["PanopticDeeplabDatasetMapper", "rgb2id"]

logger = logging.getLogger(__name__)


def rgb2id(color: np.ndarray) -> np.ndarray:
    """Segment ids of a COCO-panoptic png: R + 256 * G + 256**2 * B."""
    if color.ndim == 3:
        color = color.astype(np.int32)
        return color[..., 0] + 256 * color[..., 1] + 256 * 256 * color[..., 2]
    return color


class PanopticDeeplabDatasetMapper:
    """Maps a dataset dict with ``pan_seg_file_name`` and ``segments_info`` to the model
    input: "image" plus the targets of PanopticDeepLabTargetGenerator. Training only."""

    @configurable
    def __init__(
        self,
        *,
        augmentations: List[Union[T.Augmentation, T.Transform]],
        image_format: str,
        panoptic_target_generator: Callable,
    ):
        """
        Args:
            augmentations: applied to the image and (as a segmentation) the panoptic png.
            image_format: format of the image given to the model.
            panoptic_target_generator: turns (id map, segments_info) into targets.
        """
        self.augmentations = T.AugmentationList(augmentations)
        self.image_format = image_format
        logger.info("Augmentations used in training: " + str(augmentations))
        self.panoptic_target_generator = panoptic_target_generator

    @classmethod
    def from_config(cls, cfg):
        augs = [
            T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN, cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING)
        ]
        if cfg.INPUT.CROP.ENABLED:
            augs.append(T.RandomCrop(cfg.INPUT.CROP.TYPE, cfg.INPUT.CROP.SIZE))
        augs.append(T.RandomFlip())
        # targets are generated for the first training dataset
        meta = MetadataCatalog.get(cfg.DATASETS.TRAIN[0])
        generator = PanopticDeepLabTargetGenerator(
            ignore_label=meta.ignore_label,
            thing_ids=list(meta.thing_dataset_id_to_contiguous_id.values()),
            sigma=cfg.INPUT.GAUSSIAN_SIGMA,
            ignore_stuff_in_offset=cfg.INPUT.IGNORE_STUFF_IN_OFFSET,
            small_instance_area=cfg.INPUT.SMALL_INSTANCE_AREA,
            small_instance_weight=cfg.INPUT.SMALL_INSTANCE_WEIGHT,
            ignore_crowd_in_semantic=cfg.INPUT.IGNORE_CROWD_IN_SEMANTIC,
        )
        return {"augmentations": augs, "image_format": cfg.INPUT.FORMAT, "panoptic_target_generator": generator}

    def __call__(self, dataset_dict: Dict) -> Dict:
        dataset_dict = copy.deepcopy(dataset_dict)
        image = utils.read_image(dataset_dict["file_name"], format=self.image_format)
        utils.check_image_size(dataset_dict, image)
        if "pan_seg_file_name" not in dataset_dict:
            raise KeyError(f"PanopticDeeplabDatasetMapper needs 'pan_seg_file_name' in {dataset_dict['file_name']}'s dict")
        pan_seg_gt = utils.read_image(dataset_dict.pop("pan_seg_file_name"), "RGB")
        # the panoptic png goes through the segmentation path (nearest interpolation)
        aug_input = T.AugInput(image, sem_seg=pan_seg_gt)
        self.augmentations(aug_input)
        image, pan_seg_gt = aug_input.image, aug_input.sem_seg
        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        dataset_dict.update(self.panoptic_target_generator(rgb2id(pan_seg_gt), dataset_dict["segments_info"]))
        return dataset_dict
