"""Helpers shared by dataset mappers: reading images, transforming annotations and
turning them into Instances, and building the default augmentations from a config."""
import logging
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import pycocotools.mask as mask_util
import torch
from PIL import Image

from detectron2.layers._checks import BadInputError
from detectron2.structures import (
    BitMasks,
    Boxes,
    BoxMode,
    Instances,
    Keypoints,
    PolygonMasks,
    RotatedBoxes,
    polygons_to_bitmask,
)
from detectron2.utils.file_io import PathManager

from . import transforms as T

__all__ = [
    "SizeMismatchError",
    "convert_image_to_rgb",
    "check_image_size",
    "transform_proposals",
    "transform_instance_annotations",
    "annotations_to_instances",
    "annotations_to_instances_rotated",
    "build_augmentation",
    "build_transform_gen",
    "create_keypoint_hflip_indices",
    "filter_empty_instances",
    "read_image",
]


class SizeMismatchError(ValueError):
    """An image's size differs from the width/height recorded in its dataset dict."""


# ITU-R BT.601 RGB <-> YUV (Y in [0, 1], U and V centred on 0).
_M_RGB2YUV = [[0.299, 0.587, 0.114], [-0.14713, -0.28886, 0.436], [0.615, -0.51499, -0.10001]]
_M_YUV2RGB = [[1.0, 0.0, 1.13983], [1.0, -0.39465, -0.58060], [1.0, 2.03211, 0.0]]

# The EXIF tag holding the camera orientation, and the PIL transposition that undoes
# each of its values (1 is upright).
_EXIF_ORIENT = 274
_EXIF_TRANSPOSE = {
    2: Image.FLIP_LEFT_RIGHT,
    3: Image.ROTATE_180,
    4: Image.FLIP_TOP_BOTTOM,
    5: Image.TRANSPOSE,
    6: Image.ROTATE_270,
    7: Image.TRANSVERSE,
    8: Image.ROTATE_90,
}


def _rgb_to_bgr(array: np.ndarray) -> np.ndarray:
    """Swap the channels into a contiguous array: later steps (resize, HWC -> CHW,
    torch.from_numpy) are much faster on it than on a reversed-stride view."""
    try:
        import cv2
    except ImportError:
        return np.ascontiguousarray(array[:, :, ::-1])
    return cv2.cvtColor(np.ascontiguousarray(array), cv2.COLOR_RGB2BGR)


def convert_PIL_to_numpy(image: Image.Image, format: Optional[str]) -> np.ndarray:
    """A PIL image as an HxWxC array in `format`: a PIL mode ("RGB", "L", ...), "BGR" or
    "YUV-BT.601" (float), or None to keep the image's own mode. "L" keeps a channel axis."""
    if format is not None:
        pil_mode = "RGB" if format in ("BGR", "YUV-BT.601") else format
        image = image.convert(pil_mode)
    array = np.asarray(image)
    if format == "L":
        array = np.expand_dims(array, -1)
    elif format == "BGR":
        array = _rgb_to_bgr(array)
    elif format == "YUV-BT.601":
        array = np.dot(array / 255.0, np.array(_M_RGB2YUV).T)
    return array


def convert_image_to_rgb(image: Union[np.ndarray, torch.Tensor], format: str) -> np.ndarray:
    """An HxWxC image in `format` (see convert_PIL_to_numpy) as a uint8 RGB array."""
    if isinstance(image, torch.Tensor):
        image = image.cpu().numpy()
    if format == "BGR":
        return image[:, :, [2, 1, 0]]
    if format == "YUV-BT.601":
        return np.dot(image, np.array(_M_YUV2RGB).T) * 255.0
    if format == "L":
        image = image[:, :, 0]
    return np.asarray(Image.fromarray(image.astype(np.uint8)).convert("RGB"))


def _apply_exif_orientation(image: Image.Image) -> Image.Image:
    """Undo the camera orientation recorded in the EXIF data, if any."""
    if not hasattr(image, "getexif"):
        return image
    try:
        exif = image.getexif()
    except Exception:  # malformed EXIF: use the pixels as stored
        return image
    if exif is None:
        return image
    method = _EXIF_TRANSPOSE.get(exif.get(_EXIF_ORIENT))
    return image.transpose(method) if method is not None else image


def read_image(file_name: str, format: Optional[str] = None) -> np.ndarray:
    """Read an image file (any PathManager path) as an HxWxC array in `format` (see
    convert_PIL_to_numpy; uint8 except for "YUV-BT.601"), EXIF orientation applied."""
    with PathManager.open(file_name, "rb") as f:
        image = Image.open(f)
        image = _apply_exif_orientation(image)
        return convert_PIL_to_numpy(image, format)


def check_image_size(dataset_dict: Dict[str, Any], image: np.ndarray) -> None:
    """Raise SizeMismatchError if `image` disagrees with the dict's width/height; fill
    them in where missing."""
    if "width" in dataset_dict or "height" in dataset_dict:
        got = (image.shape[1], image.shape[0])
        expected = (dataset_dict.get("width", got[0]), dataset_dict.get("height", got[1]))
        if got != expected:
            where = f" for image {dataset_dict['file_name']}" if "file_name" in dataset_dict else ""
            raise SizeMismatchError(
                f"Mismatched image shape{where}, got (w, h) = {got}, expected {expected}. "
                "Please check the width/height in your annotation."
            )
    dataset_dict.setdefault("width", image.shape[1])
    dataset_dict.setdefault("height", image.shape[0])


def transform_proposals(
    dataset_dict: Dict[str, Any],
    image_shape: Tuple[int, int],
    transforms: T.TransformList,
    *,
    proposal_topk: int,
    min_box_size: float = 0,
) -> None:
    """Move precomputed proposals ("proposal_boxes", "proposal_bbox_mode",
    "proposal_objectness_logits", sorted by score) of the dict through `transforms`
    into ``dataset_dict["proposals"]``: an Instances with proposal_boxes and
    objectness_logits, clipped, small boxes removed, at most `proposal_topk` kept."""
    if "proposal_boxes" not in dataset_dict:
        return
    raw = BoxMode.convert(
        dataset_dict.pop("proposal_boxes"), dataset_dict.pop("proposal_bbox_mode"), BoxMode.XYXY_ABS
    )
    boxes = Boxes(transforms.apply_box(raw))
    logits = torch.as_tensor(np.asarray(dataset_dict.pop("proposal_objectness_logits")).astype("float32"))
    boxes.clip(image_shape)
    keep = boxes.nonempty(threshold=min_box_size)
    proposals = Instances(image_shape)
    proposals.proposal_boxes = boxes[keep][:proposal_topk]
    proposals.objectness_logits = logits[keep][:proposal_topk]
    dataset_dict["proposals"] = proposals


def get_bbox(annotation: Dict[str, Any]) -> np.ndarray:
    """The annotation's box as a float64 XYXY_ABS array of 4."""
    mode = annotation["bbox_mode"]
    # The two common modes in numpy: BoxMode.convert goes through torch, slow per box.
    if mode in (BoxMode.XYXY_ABS, BoxMode.XYWH_ABS):
        box = np.array(annotation["bbox"], dtype=np.float64).reshape(-1)
        if box.shape != (4,):
            raise ValueError(f"annotation['bbox'] must have 4 numbers in mode {BoxMode(mode).name}, got {box.shape[0]}")
        if box[2] < (0 if mode == BoxMode.XYWH_ABS else box[0]) or box[3] < (0 if mode == BoxMode.XYWH_ABS else box[1]):
            # a transform (e.g. a flip) would silently turn it into another, valid box
            raise BadInputError(
                f"annotation['bbox'] {box.tolist()} in mode {BoxMode(mode).name} has a negative "
                "width or height; expected width, height >= 0"
            )
        if mode == BoxMode.XYWH_ABS:
            box[2:] += box[:2]
        return box
    return np.asarray(BoxMode.convert(annotation["bbox"], mode, BoxMode.XYXY_ABS), dtype=np.float64)


def _as_transform_list(transforms) -> T.TransformList:
    if isinstance(transforms, T.TransformList):
        return transforms
    if isinstance(transforms, (tuple, list)):
        return T.TransformList(list(transforms))
    return T.TransformList([transforms])


def _polygon_array(polygon: Any, index: int) -> np.ndarray:
    arr = np.asarray(polygon)  # the dtype is kept: upstream leaves integer polygons integer
    if not np.issubdtype(arr.dtype, np.number):
        raise BadInputError(f"annotation['segmentation'][{index}] must hold numbers, got dtype {arr.dtype}")
    if arr.ndim != 1 or arr.size % 2 != 0 or arr.size < 6:
        raise BadInputError(
            f"annotation['segmentation'][{index}] must be a flat polygon x0, y0, x1, y1, ... of an even "
            f"number (>= 6) of coordinates, got shape {arr.shape}"
        )
    return arr.reshape(-1, 2)


def transform_instance_annotations(
    annotation: Dict[str, Any],
    transforms: Union[T.Transform, T.TransformList, Sequence[T.Transform]],
    image_size: Tuple[int, int],
    *,
    keypoint_hflip_indices: Optional[np.ndarray] = None,
) -> Dict[str, Any]:
    """Apply `transforms` to one instance annotation, in place: its box (converted to
    XYXY_ABS and clipped to `image_size` = (h, w), the size after the transforms),
    segmentation (polygons, RLE dict or mask) and keypoints. Returns the annotation."""
    transforms = _as_transform_list(transforms)
    bbox = transforms.apply_box(np.array([get_bbox(annotation)]))[0].clip(min=0)
    h, w = image_size
    annotation["bbox"] = np.minimum(bbox, [w, h, w, h])
    annotation["bbox_mode"] = BoxMode.XYXY_ABS

    if "segmentation" in annotation:
        segm = annotation["segmentation"]
        if isinstance(segm, list):
            polygons = [_polygon_array(p, i) for i, p in enumerate(segm)]
            annotation["segmentation"] = [p.reshape(-1) for p in transforms.apply_polygons(polygons)]
        elif isinstance(segm, dict):
            mask = transforms.apply_segmentation(mask_util.decode(segm))
            if tuple(mask.shape[:2]) != tuple(image_size):
                raise ValueError(
                    f"transform_instance_annotations: the transformed RLE mask has size {mask.shape[:2]}, "
                    f"but image_size is {tuple(image_size)}"
                )
            annotation["segmentation"] = mask
        elif isinstance(segm, np.ndarray):
            annotation["segmentation"] = transforms.apply_segmentation(segm)
        else:
            raise ValueError(
                f"Cannot transform segmentation of type '{type(segm)}'! Supported types are: "
                "polygons as list[list[float] or ndarray], COCO-style RLE as a dict, or a binary mask array."
            )

    if "keypoints" in annotation:
        annotation["keypoints"] = transform_keypoint_annotations(
            annotation["keypoints"], transforms, image_size, keypoint_hflip_indices
        )
    return annotation


def _keypoints_array(keypoints: Any) -> np.ndarray:
    """Flat [x, y, v, ...] or (K, 3) keypoints as a (K, 3) float64 array."""
    arr = np.asarray(keypoints, dtype="float64")
    if arr.size % 3 != 0 or (arr.ndim == 2 and arr.shape[1] != 3) or arr.ndim > 2:
        raise BadInputError(
            f"annotation['keypoints'] must be x, y, visibility triplets (flat, a multiple of 3 numbers, "
            f"or K x 3), got shape {arr.shape}"
        )
    return arr.reshape(-1, 3)


def transform_keypoint_annotations(
    keypoints: Union[List[float], np.ndarray],
    transforms: Union[T.Transform, T.TransformList, Sequence[T.Transform]],
    image_size: Tuple[int, int],
    keypoint_hflip_indices: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Transform COCO keypoints (flat [x, y, v, ...] or Kx3) to a (K, 3) float64 array.

    Points that leave the image get visibility 0, unlabelled points become all zero,
    and an odd number of horizontal flips swaps left/right points through
    `keypoint_hflip_indices` (see create_keypoint_hflip_indices).
    """
    transforms = _as_transform_list(transforms)
    keypoints = _keypoints_array(keypoints)
    if keypoint_hflip_indices is not None and len(keypoints) != len(keypoint_hflip_indices):
        raise BadInputError(
            f"annotation['keypoints'] has {len(keypoints)} keypoints, but the dataset's "
            f"keypoint_hflip_indices has {len(keypoint_hflip_indices)} (from its keypoint_names)"
        )
    xy = transforms.apply_coords(keypoints[:, :2])
    h, w = image_size
    inside = ((xy >= 0) & (xy <= np.array([w, h]))).all(axis=1)
    keypoints[:, :2] = xy
    keypoints[~inside, 2] = 0

    flips = sum(isinstance(t, T.HFlipTransform) for t in transforms.transforms)
    if flips % 2 == 1:
        if keypoint_hflip_indices is None:
            raise ValueError("Cannot flip keypoints without providing flip indices (keypoint_hflip_indices)!")
        if len(keypoints) != len(keypoint_hflip_indices):
            raise ValueError(
                f"Keypoint data has {len(keypoints)} points, but keypoint_hflip_indices has "
                f"{len(keypoint_hflip_indices)} points!"
            )
        keypoints = keypoints[np.asarray(keypoint_hflip_indices, dtype=np.int64), :]

    keypoints[keypoints[:, 2] == 0] = 0
    return keypoints


def _masks_from_segmentations(segms: List[Any], image_size: Tuple[int, int], mask_format: str):
    if mask_format == "polygon":
        try:
            return PolygonMasks(segms)
        except ValueError as e:
            raise BadInputError(f"Failed to use mask_format=='polygon' from the given annotations: {e}") from e
    if mask_format != "bitmask":
        raise ValueError(f"annotations_to_instances: mask_format must be 'polygon' or 'bitmask', got {mask_format!r}")
    masks = []
    for segm in segms:
        if isinstance(segm, list):
            masks.append(polygons_to_bitmask(segm, *image_size))
        elif isinstance(segm, dict):
            masks.append(mask_util.decode(segm))
        elif isinstance(segm, np.ndarray):
            if segm.ndim != 2:
                raise ValueError(f"annotations_to_instances: a mask segmentation must be 2D, got shape {segm.shape}")
            masks.append(segm)
        else:
            raise ValueError(
                f"Cannot convert segmentation of type '{type(segm)}' to BitMasks! Supported types are: "
                "polygons as list[list[float] or ndarray], COCO-style RLE as a dict, or a binary mask array."
            )
    return BitMasks(torch.stack([torch.from_numpy(np.ascontiguousarray(m)) for m in masks]))


def annotations_to_instances(
    annos: List[Dict[str, Any]], image_size: Tuple[int, int], mask_format: str = "polygon"
) -> Instances:
    """Instances of one image from its (transformed) annotations: gt_boxes (Boxes),
    gt_classes (int64), and where present gt_masks (PolygonMasks or BitMasks by
    `mask_format`) and gt_keypoints (Keypoints)."""
    if len(annos):
        boxes = np.stack([get_bbox(obj) for obj in annos]).astype(np.float32)
    else:
        boxes = np.zeros((0, 4), dtype=np.float32)
    target = Instances(image_size)
    target.gt_boxes = Boxes(boxes)
    target.gt_classes = torch.tensor([int(obj["category_id"]) for obj in annos], dtype=torch.int64)

    if len(annos) and "segmentation" in annos[0]:
        segms = [obj["segmentation"] for obj in annos]
        target.gt_masks = _masks_from_segmentations(segms, image_size, mask_format)

    if len(annos) and "keypoints" in annos[0]:
        kpts = [_keypoints_array(obj.get("keypoints", [])).astype(np.float32) for obj in annos]
        if len({len(k) for k in kpts}) > 1:
            raise BadInputError(
                "annotations_to_instances: every annotation must have the same number of keypoints, got "
                f"{[len(k) for k in kpts]}"
            )
        target.gt_keypoints = Keypoints(np.stack(kpts))
    return target


def annotations_to_instances_rotated(annos: List[Dict[str, Any]], image_size: Tuple[int, int]) -> Instances:
    """Instances with gt_boxes (RotatedBoxes, clipped) and gt_classes from annotations
    whose "bbox" is XYWHA_ABS."""
    boxes = np.asarray([obj["bbox"] for obj in annos], dtype=np.float32).reshape(-1, 5)
    target = Instances(image_size)
    target.gt_boxes = RotatedBoxes(torch.from_numpy(boxes))
    target.gt_boxes.clip(image_size)
    target.gt_classes = torch.tensor([int(obj["category_id"]) for obj in annos], dtype=torch.int64)
    return target


def filter_empty_instances(
    instances: Instances,
    by_box: bool = True,
    by_mask: bool = True,
    box_threshold: float = 1e-5,
    return_mask: bool = False,
):
    """Drop instances whose box is (nearly) empty or, with gt_masks, whose mask is empty.

    Returns the kept Instances, and the boolean keep mask too with `return_mask`.
    """
    if not (by_box or by_mask):
        raise ValueError("filter_empty_instances: at least one of by_box and by_mask must be True")
    tests = []
    if by_box:
        tests.append(instances.gt_boxes.nonempty(threshold=box_threshold))
    if by_mask and instances.has("gt_masks"):
        tests.append(instances.gt_masks.nonempty())
    if not tests:
        return (instances, torch.ones(len(instances), dtype=torch.bool)) if return_mask else instances
    keep = tests[0]
    for t in tests[1:]:
        keep = keep & t
    if return_mask:
        return instances[keep], keep
    return instances[keep]


def create_keypoint_hflip_indices(dataset_names: Union[str, List[str]]) -> List[int]:
    """For each keypoint, the index of its mirror image, from the datasets' metadata
    ``keypoint_names`` and ``keypoint_flip_map`` (pairs of names)."""
    from .catalog import MetadataCatalog

    if isinstance(dataset_names, str):
        dataset_names = [dataset_names]
    check_metadata_consistency("keypoint_names", dataset_names)
    check_metadata_consistency("keypoint_flip_map", dataset_names)
    meta = MetadataCatalog.get(dataset_names[0])
    names = list(meta.keypoint_names)
    flip_map = dict(meta.keypoint_flip_map)
    flip_map.update({v: k for k, v in flip_map.items()})
    return [names.index(flip_map.get(name, name)) for name in names]


def get_fed_loss_cls_weights(dataset_names: Union[str, List[str]], freq_weight_power: float = 1.0) -> torch.Tensor:
    """Per-class sampling weights for the federated loss: image counts (metadata
    ``class_image_count``, a list of {"id", "image_count"}) to the power
    `freq_weight_power`, ordered by class id."""
    from .catalog import MetadataCatalog

    if isinstance(dataset_names, str):
        dataset_names = [dataset_names]
    check_metadata_consistency("class_image_count", dataset_names)
    counts = MetadataCatalog.get(dataset_names[0]).class_image_count
    freq = torch.tensor([c["image_count"] for c in sorted(counts, key=lambda c: c["id"])])
    return freq.float() ** freq_weight_power


def gen_crop_transform_with_instance(
    crop_size: Tuple[int, int], image_size: Tuple[int, int], instance: Dict[str, Any]
) -> T.CropTransform:
    """A random CropTransform of `crop_size` = (h, w) inside `image_size` that contains
    the centre of `instance`'s box."""
    crop_size = np.asarray(crop_size, dtype=np.int32)
    bbox = get_bbox(instance)
    center_yx = np.array([(bbox[1] + bbox[3]) * 0.5, (bbox[0] + bbox[2]) * 0.5])
    if image_size[0] < center_yx[0] or image_size[1] < center_yx[1]:
        raise ValueError(
            f"gen_crop_transform_with_instance: the instance's box centre (y, x) = {tuple(center_yx)} "
            f"is outside of the image of size {tuple(image_size)}"
        )
    if image_size[0] < crop_size[0] or image_size[1] < crop_size[1]:
        raise ValueError(
            f"gen_crop_transform_with_instance: crop_size {tuple(crop_size)} is larger than image_size "
            f"{tuple(image_size)}"
        )
    lo = np.maximum(np.floor(center_yx).astype(np.int32) - crop_size, 0)
    hi = np.maximum(np.asarray(image_size, dtype=np.int32) - crop_size, 0)
    hi = np.minimum(hi, np.ceil(center_yx).astype(np.int32))
    y0 = np.random.randint(lo[0], hi[0] + 1)
    x0 = np.random.randint(lo[1], hi[1] + 1)
    return T.CropTransform(int(x0), int(y0), int(crop_size[1]), int(crop_size[0]))


def check_metadata_consistency(key: str, dataset_names: List[str]) -> None:
    """Raise ValueError if the datasets' metadata disagree on `key` (logging the values)."""
    from .catalog import MetadataCatalog

    if len(dataset_names) == 0:
        return
    logger = logging.getLogger(__name__)
    entries = [getattr(MetadataCatalog.get(d), key) for d in dataset_names]
    for name, entry in zip(dataset_names, entries):
        if entry != entries[0]:
            logger.error("Metadata '%s' for dataset '%s' is '%s'", key, name, entry)
            logger.error("Metadata '%s' for dataset '%s' is '%s'", key, dataset_names[0], entries[0])
            raise ValueError(f"Datasets have different metadata '{key}'!")


def build_augmentation(cfg, is_train: bool) -> List[T.Augmentation]:
    """The default augmentations from a config: ResizeShortestEdge by INPUT.MIN_SIZE_* /
    MAX_SIZE_*, and in training a RandomFlip by INPUT.RANDOM_FLIP."""
    if is_train:
        min_size = cfg.INPUT.MIN_SIZE_TRAIN
        max_size = cfg.INPUT.MAX_SIZE_TRAIN
        sample_style = cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING
    else:
        min_size = cfg.INPUT.MIN_SIZE_TEST
        max_size = cfg.INPUT.MAX_SIZE_TEST
        sample_style = "choice"
    augmentation = [T.ResizeShortestEdge(min_size, max_size, sample_style)]
    if is_train and cfg.INPUT.RANDOM_FLIP != "none":
        augmentation.append(
            T.RandomFlip(
                horizontal=cfg.INPUT.RANDOM_FLIP == "horizontal",
                vertical=cfg.INPUT.RANDOM_FLIP == "vertical",
            )
        )
    return augmentation


build_transform_gen = build_augmentation
"""Alias of build_augmentation, its name in older releases."""
