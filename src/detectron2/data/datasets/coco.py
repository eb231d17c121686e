"""COCO-format instance annotations and folders of semantic-segmentation pngs: loading,
registration, and conversion of any registered dataset back to a COCO json."""
import contextlib
import copy
import datetime
import io
import json
import logging
import os
import shutil
from typing import Any, Callable, Dict, List, Optional, Union

import numpy as np
import pycocotools.mask as mask_util
from iopath.common.file_io import file_lock

from detectron2.layers._errors import ValueAssertionError
from detectron2.layers._checks import BadInputError
from detectron2.structures import Boxes, BoxMode, PolygonMasks, RotatedBoxes
from detectron2.utils.file_io import PathManager

from ..catalog import DatasetCatalog, MetadataCatalog

__all__ = ["load_coco_json", "load_sem_seg", "convert_to_coco_json", "register_coco_instances"]

logger = logging.getLogger(__name__)


def _load_coco_api(json_file: str):
    from pycocotools.coco import COCO

    json_file = PathManager.get_local_path(json_file)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        return COCO(json_file)


def _set_category_metadata(coco_api, dataset_name: str) -> Dict[int, int]:
    """Record thing_classes of ``dataset_name`` and return the map from the json's
    category ids to contiguous ids 0..K-1 (in increasing id order)."""
    meta = MetadataCatalog.get(dataset_name)
    cat_ids = sorted(coco_api.getCatIds())
    cats = coco_api.loadCats(cat_ids)
    meta.thing_classes = [c["name"] for c in sorted(cats, key=lambda x: x["id"])]
    if cat_ids and not (min(cat_ids) == 1 and max(cat_ids) == len(cat_ids)) and "coco" not in dataset_name:
        # COCO itself is known to have gaps; elsewhere it may be a mistake, so say so.
        logger.warning(
            "Category ids in annotations are not in [1, #categories]! We'll apply a mapping for you."
        )
    id_map = {v: i for i, v in enumerate(cat_ids)}
    meta.thing_dataset_id_to_contiguous_id = id_map
    return id_map


def _valid_segmentation(segm: Any) -> Any:
    """The annotation's segmentation as loaded: RLE dict (compressed), or the polygons
    that have at least 3 points; None when nothing valid is left."""
    if isinstance(segm, dict):
        if isinstance(segm["counts"], list):  # uncompressed RLE
            segm = mask_util.frPyObjects(segm, *segm["size"])
        return segm
    polygons = [poly for poly in segm if len(poly) % 2 == 0 and len(poly) >= 6]
    return polygons or None


def _check_coco_bbox(bbox: Any, anno: Dict) -> None:
    """A COCO bbox is [x, y, width, height] with finite numbers and width, height >= 0."""
    where = f"Annotation {anno.get('id', '?')} of image {anno.get('image_id', '?')}"
    box = np.asarray(bbox, dtype=np.float64).reshape(-1)
    if box.shape != (4,):
        raise BadInputError(f"{where}: 'bbox' must be [x, y, width, height], got {len(box)} numbers: {bbox}")
    if not np.isfinite(box).all() or box[2] < 0 or box[3] < 0:
        raise BadInputError(
            f"{where}: 'bbox' [x, y, width, height] must be finite with width, height >= 0, got {list(bbox)}"
        )


def _convert_annotation(anno: Dict, ann_keys: List[str], id_map: Optional[Dict[int, int]]) -> Optional[Dict]:
    """One COCO annotation as a detectron2 annotation dict; None if its segmentation is invalid."""
    if anno.get("ignore", 0) != 0:
        raise ValueAssertionError('"ignore" in COCO json file is not supported.')
    obj = {key: anno[key] for key in ann_keys if key in anno}
    if "bbox" in obj and len(obj["bbox"]) == 0:
        raise ValueError(
            f"One annotation of image {anno['image_id']} contains empty 'bbox' value! "
            "This json does not have valid COCO format."
        )
    if "bbox" in obj:
        _check_coco_bbox(obj["bbox"], anno)
    keypts = anno.get("keypoints", None)
    if keypts and len(keypts) % 3 != 0:
        raise BadInputError(
            f"Annotation {anno.get('id', '?')} of image {anno.get('image_id', '?')}: 'keypoints' must be "
            f"x, y, visibility triplets (a multiple of 3 numbers), got {len(keypts)} numbers"
        )
    segm = anno.get("segmentation", None)
    if segm:  # missing or empty: no mask for this instance
        segm = _valid_segmentation(segm)
        if segm is None:
            return None
        obj["segmentation"] = segm
    keypts = anno.get("keypoints", None)
    if keypts:
        # COCO keypoints are integer pixel indices; +0.5 makes them continuous coordinates
        # (pixel i covers [i, i + 1]), the convention of the rest of the library.
        obj["keypoints"] = [v + 0.5 if i % 3 != 2 else v for i, v in enumerate(keypts)]
    obj["bbox_mode"] = BoxMode.XYWH_ABS
    if id_map is not None:
        cat = obj["category_id"]
        try:
            obj["category_id"] = id_map[cat]
        except KeyError as e:
            raise KeyError(
                f"Encountered category_id={cat} but this id does not exist in 'categories' of the json file."
            ) from e
    return obj


def load_coco_json(
    json_file: str, image_root: str, dataset_name: Optional[str] = None, extra_annotation_keys: Optional[List[str]] = None
) -> List[Dict]:
    """Load a json file in COCO's instances annotation format.

    Args:
        json_file: path to the json.
        image_root: the directory the images' file_name are relative to.
        dataset_name: when given, its metadata gets "thing_classes" and
            "thing_dataset_id_to_contiguous_id", and category ids are mapped to 0..K-1
            (in increasing json id order). Without it, category ids stay as in the json.
        extra_annotation_keys: annotation keys to copy besides "iscrowd", "bbox",
            "keypoints", "category_id" (and "segmentation", always processed).

    Returns:
        list[dict] in detectron2's standard dataset format: file_name, height, width,
        image_id, annotations (bbox in XYWH_ABS, bbox_mode, category_id, iscrowd,
        segmentation, keypoints ...). Instances whose polygons all have fewer than 3
        points are dropped with a warning.
    """
    coco_api = _load_coco_api(json_file)
    id_map = _set_category_metadata(coco_api, dataset_name) if dataset_name is not None else None

    img_ids = sorted(coco_api.imgs.keys())
    imgs = coco_api.loadImgs(img_ids)
    anns = [coco_api.imgToAnns[img_id] for img_id in img_ids]
    total_num_valid_anns = sum(len(x) for x in anns)
    if total_num_valid_anns < len(coco_api.anns):
        logger.warning(
            f"{json_file} contains {len(coco_api.anns)} annotations, but only "
            f"{total_num_valid_anns} of them match to images in the file."
        )
    if "minival" not in str(json_file):
        # minival of COCO 2014 is known to repeat annotation ids; elsewhere it is an error.
        ann_ids = [ann["id"] for anns_per_image in anns for ann in anns_per_image]
        if len(set(ann_ids)) != len(ann_ids):
            raise ValueAssertionError(f"Annotation ids in '{json_file}' are not unique!")
    logger.info(f"Loaded {len(imgs)} images in COCO format from {json_file}")

    ann_keys = ["iscrowd", "bbox", "keypoints", "category_id"] + list(extra_annotation_keys or [])
    num_invalid_segm = 0
    dataset_dicts = []
    for img_dict, anno_dict_list in zip(imgs, anns):
        image_id = img_dict["id"]
        record = {
            "file_name": os.path.join(image_root, img_dict["file_name"]),
            "height": img_dict["height"],
            "width": img_dict["width"],
            "image_id": image_id,
        }
        objs = []
        for anno in anno_dict_list:
            obj = _convert_annotation(anno, ann_keys, id_map)
            if obj is None:
                num_invalid_segm += 1
            else:
                objs.append(obj)
        record["annotations"] = objs
        dataset_dicts.append(record)

    if num_invalid_segm > 0:
        logger.warning(
            f"Filtered out {num_invalid_segm} instances without valid segmentation. There might be "
            "issues in your dataset generation process (a polygon needs at least 3 points)."
        )
    return dataset_dicts


def _file_stem(folder: str, file_path: str) -> str:
    """A file's path relative to ``folder``, without extension: the key matching an
    image with its ground-truth file."""
    rel = os.path.normpath(os.path.relpath(file_path, start=folder))
    return os.path.splitext(rel)[0]


def _list_files(folder: str, ext: str) -> List[str]:
    files = [os.path.join(folder, f) for f in PathManager.ls(folder) if f.endswith(ext)]
    return sorted(files, key=lambda p: _file_stem(folder, p))


def load_sem_seg(gt_root: str, image_root: str, gt_ext: str = "png", image_ext: str = "jpg") -> List[Dict]:
    """Pair every image of ``image_root`` with the ground-truth file of the same name
    (relative path without extension) in ``gt_root``.

    Returns:
        list[dict] with "file_name" and "sem_seg_file_name". Images or labels without a
        partner are dropped with a warning.
    """
    input_files = _list_files(image_root, image_ext)
    gt_files = _list_files(gt_root, gt_ext)
    if not gt_files:
        raise FileNotFoundError(f"No annotations found in {gt_root}.")
    if len(input_files) != len(gt_files):
        logger.warning(
            f"Directory {image_root} and {gt_root} has {len(input_files)} and {len(gt_files)} files, respectively."
        )
        input_by_stem = {_file_stem(image_root, f): f for f in input_files}
        gt_by_stem = {_file_stem(gt_root, f): f for f in gt_files}
        common = sorted(set(input_by_stem) & set(gt_by_stem))
        logger.warning(f"Will use their intersection of {len(common)} files.")
        input_files = [input_by_stem[s] for s in common]
        gt_files = [gt_by_stem[s] for s in common]
    logger.info(f"Loaded {len(input_files)} images with semantic segmentation from {image_root}")
    return [{"file_name": img, "sem_seg_file_name": gt} for img, gt in zip(input_files, gt_files)]


def _instance_area(annotation: Dict, bbox: List[float], to_mode: BoxMode) -> float:
    """Mask area when there is a mask, else the box area (COCO's "area" field)."""
    if "segmentation" in annotation:
        segmentation = annotation["segmentation"]
        if isinstance(segmentation, list):
            return PolygonMasks([segmentation]).area()[0].item()
        if isinstance(segmentation, dict):
            return mask_util.area(segmentation).item()
        raise TypeError(f"Unknown segmentation type {type(segmentation)}!")
    if to_mode == BoxMode.XYWH_ABS:
        return Boxes([BoxMode.convert(bbox, to_mode, BoxMode.XYXY_ABS)]).area()[0].item()
    return RotatedBoxes([bbox]).area()[0].item()


def _to_coco_annotation(annotation: Dict, image_id: Any, ann_id: int, reverse_id_mapper: Callable[[int], int]) -> Dict:
    bbox = annotation["bbox"]
    if isinstance(bbox, np.ndarray):
        if bbox.ndim != 1:
            raise ValueError(f"bbox has to be 1-dimensional. Got shape={bbox.shape}.")
        bbox = bbox.tolist()
    if len(bbox) not in (4, 5):
        raise ValueError(f"bbox has to have length 4 or 5. Got {bbox}.")
    to_mode = BoxMode.XYWH_ABS if len(bbox) == 4 else BoxMode.XYWHA_ABS
    bbox = BoxMode.convert(list(bbox), annotation["bbox_mode"], to_mode)
    coco_annotation = {
        "id": ann_id,
        "image_id": image_id,
        "bbox": [round(float(x), 3) for x in bbox],
        "area": float(_instance_area(annotation, bbox, to_mode)),
        "iscrowd": int(annotation.get("iscrowd", 0)),
        "category_id": int(reverse_id_mapper(annotation["category_id"])),
    }
    if "keypoints" in annotation:
        # Back from continuous coordinates to COCO's pixel indices (see load_coco_json).
        keypoints = [v - 0.5 if i % 3 != 2 else v for i, v in enumerate(annotation["keypoints"])]
        coco_annotation["keypoints"] = keypoints
        coco_annotation["num_keypoints"] = annotation.get(
            "num_keypoints", int(sum(v > 0 for v in keypoints[2::3]))
        )
    if "segmentation" in annotation:
        seg = copy.copy(annotation["segmentation"])
        if isinstance(seg, dict) and not isinstance(seg["counts"], str):
            seg["counts"] = seg["counts"].decode("ascii")  # json cannot hold bytes
        coco_annotation["segmentation"] = seg
    return coco_annotation


def convert_to_coco_dict(dataset_name: str) -> Dict:
    """The registered dataset ``dataset_name`` (detectron2 format) as a COCO json dict.

    Category ids go back to the dataset's own ids through the metadata's
    "thing_dataset_id_to_contiguous_id" when present. Rotated boxes (5 numbers) are
    kept in XYWHA_ABS.
    """
    dataset_dicts = DatasetCatalog.get(dataset_name)
    metadata = MetadataCatalog.get(dataset_name)
    if hasattr(metadata, "thing_dataset_id_to_contiguous_id"):
        reverse_map = {v: k for k, v in metadata.thing_dataset_id_to_contiguous_id.items()}

        def reverse_id_mapper(contiguous_id: int) -> int:
            return reverse_map[contiguous_id]

    else:

        def reverse_id_mapper(contiguous_id: int) -> int:
            return contiguous_id

    categories = [{"id": reverse_id_mapper(i), "name": name} for i, name in enumerate(metadata.thing_classes)]
    logger.info("Converting dataset dicts into COCO format")
    coco_images, coco_annotations = [], []
    for image_id, image_dict in enumerate(dataset_dicts):
        coco_image = {
            "id": image_dict.get("image_id", image_id),
            "width": int(image_dict["width"]),
            "height": int(image_dict["height"]),
            "file_name": str(image_dict["file_name"]),
        }
        coco_images.append(coco_image)
        for annotation in image_dict.get("annotations", []):
            ann_id = len(coco_annotations) + 1  # COCO ids start at 1
            coco_annotations.append(_to_coco_annotation(annotation, coco_image["id"], ann_id, reverse_id_mapper))
    logger.info(f"Conversion finished, #images: {len(coco_images)}, #annotations: {len(coco_annotations)}")
    info = {
        "date_created": str(datetime.datetime.now()),
        "description": "Automatically generated COCO json file for Detectron2.",
    }
    coco_dict = {"info": info, "images": coco_images, "categories": categories, "licenses": None}
    if coco_annotations:
        coco_dict["annotations"] = coco_annotations
    return coco_dict


def convert_to_coco_json(dataset_name: str, output_file: str, allow_cached: bool = True) -> None:
    """Write the registered dataset ``dataset_name`` as a COCO json to ``output_file``.

    The file is written to a temporary name and moved into place, under a file lock,
    so concurrent processes never read a partial file. With ``allow_cached`` an
    existing file is kept as is (delete it after changing the dataset).
    """
    PathManager.mkdirs(os.path.dirname(output_file) or ".")
    with file_lock(output_file):
        if PathManager.exists(output_file) and allow_cached:
            logger.warning(
                f"Using previously cached COCO format annotations at '{output_file}'. "
                "You need to clear the cache file if your dataset has been modified."
            )
            return
        logger.info(f"Converting annotations of dataset '{dataset_name}' to COCO format ...)")
        coco_dict = convert_to_coco_dict(dataset_name)
        logger.info(f"Caching COCO format annotations at '{output_file}' ...")
        tmp_file = output_file + ".tmp"
        with PathManager.open(tmp_file, "w") as f:
            json.dump(coco_dict, f)
        shutil.move(tmp_file, output_file)


def register_coco_instances(name: str, metadata: Dict, json_file: Union[str, os.PathLike], image_root: Union[str, os.PathLike]) -> None:
    """Register a COCO-format instances dataset (detection, segmentation, keypoints).

    Nothing is read now: ``DatasetCatalog.get(name)`` calls load_coco_json later.

    Args:
        name: the dataset's name, e.g. "coco_2014_train".
        metadata: extra metadata (may be empty).
        json_file: path to the json instance annotation file.
        image_root: directory of the images.
    """
    if not isinstance(name, str):
        raise TypeError(f"register_coco_instances: name must be a str, got {type(name).__name__}")
    for arg, value in (("json_file", json_file), ("image_root", image_root)):
        if not isinstance(value, (str, os.PathLike)):
            raise TypeError(f"register_coco_instances: {arg} must be a path, got {type(value).__name__}")
    DatasetCatalog.register(name, lambda: load_coco_json(json_file, image_root, name))
    MetadataCatalog.get(name).set(json_file=json_file, image_root=image_root, evaluator_type="coco", **metadata)
