"""LVIS instance annotations (v0.5 and v1): loading, registration and metadata.

LVIS has 1230 (v0.5) or 1203 (v1) categories. Their names are not embedded here: they
are read from the categories of the json file itself (which every LVIS json carries),
once, when the dataset is loaded or its metadata is asked for.
"""
import functools
import json
import logging
import os
from collections import defaultdict
from typing import Any, Dict, List, Optional

from detectron2.structures import BoxMode
from detectron2.utils.file_io import PathManager

from ..catalog import DatasetCatalog, MetadataCatalog
from .builtin_meta import _get_coco_instances_meta

__all__ = ["load_lvis_json", "register_lvis_instances", "get_lvis_instances_meta"]

logger = logging.getLogger(__name__)


def register_lvis_instances(name: str, metadata: Dict, json_file: str, image_root: str) -> None:
    """Register an LVIS-format instances dataset; nothing is read until it is loaded.

    Args:
        name: the dataset's name, e.g. "lvis_v1_train".
        metadata: extra metadata (may be empty: thing_classes then come from the json).
        json_file: path to the json instance annotation file.
        image_root: directory containing the split folders ("train2017", "val2017").
    """
    DatasetCatalog.register(name, lambda: load_lvis_json(json_file, image_root, name))
    MetadataCatalog.get(name).set(json_file=json_file, image_root=image_root, evaluator_type="lvis", **metadata)


def _read_json(json_file: str) -> Dict:
    with PathManager.open(json_file) as f:
        return json.load(f)


@functools.lru_cache(maxsize=16)
def _categories_of(json_file: str) -> List[Dict]:
    # Cached: only the categories, not the (up to 1 GB) annotations.
    return _read_json(json_file)["categories"]


def _meta_from_categories(categories: List[Dict]) -> Dict[str, Any]:
    cats = sorted(categories, key=lambda c: c["id"])
    ids = [c["id"] for c in cats]
    if ids != list(range(1, len(ids) + 1)):
        raise ValueError(f"LVIS category ids must be 1..{len(ids)} without gaps, got {ids[:5]}...")
    meta: Dict[str, Any] = {"thing_classes": [c["synonyms"][0] if c.get("synonyms") else c["name"] for c in cats]}
    if all("image_count" in c for c in cats):
        # Used by the federated loss to weight categories by frequency.
        meta["class_image_count"] = [{"id": c["id"], "image_count": c["image_count"]} for c in cats]
    return meta


def get_lvis_instances_meta(dataset_name: str) -> Dict[str, Any]:
    """Metadata (thing_classes, and class_image_count when available) of an LVIS dataset.

    "cocofied" LVIS uses COCO's 80 categories. Otherwise the categories come from the
    json of the registered dataset ``dataset_name`` (its metadata's json_file).
    """
    if "cocofied" in dataset_name:
        return _get_coco_instances_meta()
    json_file = MetadataCatalog.get(dataset_name).get("json_file")
    if json_file is None or not PathManager.isfile(json_file):
        raise ValueError(
            f"No built-in metadata for dataset {dataset_name}: LVIS category names are read from the "
            f"dataset's json file, and '{dataset_name}' has none registered (or it does not exist: {json_file})"
        )
    return _meta_from_categories(_categories_of(json_file))


def _lvis_file_name(image_root: str, img_dict: Dict) -> str:
    """Image path: LVIS images are COCO 2017 images, located through their coco_url
    (".../train2017/000000155379.jpg" -> image_root/train2017/000000155379.jpg)."""
    if "coco_url" in img_dict:
        split_folder, file_name = img_dict["coco_url"].split("/")[-2:]
        return os.path.join(image_root, split_folder, file_name)
    return os.path.join(image_root, img_dict["file_name"])


def _convert_lvis_annotation(anno: Dict, id_map: Optional[Dict[int, int]], extra_keys: List[str]) -> Dict:
    obj = {"bbox": anno["bbox"], "bbox_mode": BoxMode.XYWH_ABS}
    # LVIS ids are 1..K; a cocofied set maps COCO's ids instead.
    obj["category_id"] = id_map[anno["category_id"]] if id_map is not None else anno["category_id"] - 1
    segm = anno["segmentation"]
    valid = [poly for poly in segm if len(poly) % 2 == 0 and len(poly) >= 6]
    if not segm or len(valid) != len(segm):
        raise ValueError(
            f"LVIS annotation {anno.get('id')} has an invalid polygon (fewer than 3 points) or no polygon"
        )
    obj["segmentation"] = segm
    for key in extra_keys:
        obj[key] = anno[key]
    return obj


def load_lvis_json(
    json_file: str, image_root: str, dataset_name: Optional[str] = None, extra_annotation_keys: Optional[List[str]] = None
) -> List[Dict]:
    """Load a json file in LVIS's annotation format.

    Args:
        json_file: path to the LVIS json.
        image_root: directory containing "train2017"/"val2017"/... (images are located
            through each image's coco_url, or its file_name when absent).
        dataset_name: when given, its metadata gets thing_classes from the json.
        extra_annotation_keys: annotation keys to copy besides bbox, category_id and
            segmentation (e.g. "score" of a results file).

    Returns:
        list[dict] in detectron2's standard format, with LVIS's per-image
        "not_exhaustive_category_ids" and "neg_category_ids" (the json's ids, unmapped).
    """
    data = _read_json(json_file)
    id_map = None
    if dataset_name is not None:
        if "cocofied" in dataset_name:
            meta = _get_coco_instances_meta()
        else:
            meta = _meta_from_categories(data["categories"])
        MetadataCatalog.get(dataset_name).set(**meta)
        id_map = meta.get("thing_dataset_id_to_contiguous_id")

    anns_per_image: Dict[Any, List[Dict]] = defaultdict(list)
    for ann in data.get("annotations", []):
        anns_per_image[ann["image_id"]].append(ann)
    ann_ids = [ann["id"] for ann in data.get("annotations", [])]
    if len(set(ann_ids)) != len(ann_ids):
        raise ValueError(f"Annotation ids in '{json_file}' are not unique")
    imgs = sorted(data["images"], key=lambda x: x["id"])
    logger.info(f"Loaded {len(imgs)} images in the LVIS format from {json_file}")

    extra_keys = list(extra_annotation_keys or [])
    dataset_dicts = []
    for img_dict in imgs:
        image_id = img_dict["id"]
        record = {
            "file_name": _lvis_file_name(image_root, img_dict),
            "height": img_dict["height"],
            "width": img_dict["width"],
            "not_exhaustive_category_ids": img_dict.get("not_exhaustive_category_ids", []),
            "neg_category_ids": img_dict.get("neg_category_ids", []),
            "image_id": image_id,
        }
        record["annotations"] = [_convert_lvis_annotation(a, id_map, extra_keys) for a in anns_per_image[image_id]]
        dataset_dicts.append(record)
    return dataset_dicts

