"""COCO panoptic segmentation: the standard format (one png + segments_info per image)
and panoptic FPN's "separated" format (COCO instances + a stuff-only semantic png)."""
import copy
import json
import os
from typing import Dict, List, Optional

from detectron2.utils.file_io import PathManager

from ..catalog import DatasetCatalog, MetadataCatalog
from .coco import load_coco_json, load_sem_seg

__all__ = ["register_coco_panoptic", "register_coco_panoptic_separated"]


def _convert_category_id(segment_info: Dict, meta: Dict) -> Dict:
    """Map a segment's dataset category id to the contiguous one and mark thing/stuff."""
    segment_info = dict(segment_info)
    cat = segment_info["category_id"]
    if cat in meta["thing_dataset_id_to_contiguous_id"]:
        segment_info["category_id"] = meta["thing_dataset_id_to_contiguous_id"][cat]
        segment_info["isthing"] = True
    elif cat in meta["stuff_dataset_id_to_contiguous_id"]:
        segment_info["category_id"] = meta["stuff_dataset_id_to_contiguous_id"][cat]
        segment_info["isthing"] = False
    else:
        raise KeyError(f"Panoptic segment {segment_info.get('id')} has category_id={cat}, unknown to the metadata")
    return segment_info


def load_coco_panoptic_json(json_file: str, image_dir: str, gt_dir: str, meta: Dict) -> List[Dict]:
    """Load a COCO panoptic json.

    Args:
        json_file: the panoptic json (e.g. panoptic_val2017.json).
        image_dir: directory of the jpg images.
        gt_dir: directory of the panoptic png annotations.
        meta: needs "thing_dataset_id_to_contiguous_id" and "stuff_dataset_id_to_contiguous_id".

    Returns:
        list[dict] with file_name, image_id, pan_seg_file_name, and segments_info (each
        segment's id, contiguous category_id, isthing, iscrowd, area, bbox as in the json).
    """
    with PathManager.open(json_file) as f:
        json_info = json.load(f)
    ret = []
    for ann in json_info["annotations"]:
        # Images are jpgs named like the annotation pngs.
        image_file = os.path.join(image_dir, os.path.splitext(ann["file_name"])[0] + ".jpg")
        ret.append(
            {
                "file_name": image_file,
                "image_id": int(ann["image_id"]),
                "pan_seg_file_name": os.path.join(gt_dir, ann["file_name"]),
                "segments_info": [_convert_category_id(x, meta) for x in ann["segments_info"]],
            }
        )
    if not ret:
        raise ValueError(f"No images found in {image_dir}!")
    for key in ("file_name", "pan_seg_file_name"):
        if not PathManager.isfile(ret[0][key]):
            raise FileNotFoundError(f"{key} of the first panoptic annotation does not exist: {ret[0][key]}")
    return ret


def register_coco_panoptic(
    name: str, metadata: Dict, image_root: str, panoptic_root: str, panoptic_json: str, instances_json: Optional[str] = None
) -> None:
    """Register a COCO panoptic dataset in the standard format under ``name``.

    Args:
        metadata: must hold thing/stuff_dataset_id_to_contiguous_id (see
            builtin_meta's "coco_panoptic_standard" for COCO).
        image_root, panoptic_root, panoptic_json: images, panoptic pngs and their json.
        instances_json: the matching COCO instances json, for instance evaluation.
    """
    DatasetCatalog.register(name, lambda: load_coco_panoptic_json(panoptic_json, image_root, panoptic_root, metadata))
    MetadataCatalog.get(name).set(
        panoptic_root=panoptic_root,
        image_root=image_root,
        panoptic_json=panoptic_json,
        json_file=instances_json,
        evaluator_type="coco_panoptic_seg",
        ignore_label=255,
        label_divisor=1000,
        **metadata,
    )


def register_coco_panoptic_separated(
    name: str, metadata: Dict, image_root: str, panoptic_root: str, panoptic_json: str, sem_seg_root: str, instances_json: str
) -> None:
    """Register COCO panoptic in panoptic FPN's "separated" format, as two datasets:

    - ``name + "_separated"``: COCO instances merged with stuff-only semantic pngs
      (in which every thing pixel has class 0), for training panoptic FPN;
    - ``name + "_stuffonly"``: the semantic pngs alone.

    Args:
        sem_seg_root: directory of the stuff-only semantic pngs (made from the panoptic
            annotations by a conversion script).
        instances_json: the COCO instances json of the same images.
        others: as register_coco_panoptic.
    """
    panoptic_name = name + "_separated"
    DatasetCatalog.register(
        panoptic_name,
        lambda: merge_to_panoptic(
            load_coco_json(instances_json, image_root, panoptic_name), load_sem_seg(sem_seg_root, image_root)
        ),
    )
    MetadataCatalog.get(panoptic_name).set(
        panoptic_root=panoptic_root,
        image_root=image_root,
        panoptic_json=panoptic_json,
        sem_seg_root=sem_seg_root,
        json_file=instances_json,
        evaluator_type="coco_panoptic_seg",
        ignore_label=255,
        **metadata,
    )
    semantic_name = name + "_stuffonly"
    DatasetCatalog.register(semantic_name, lambda: load_sem_seg(sem_seg_root, image_root))
    MetadataCatalog.get(semantic_name).set(
        sem_seg_root=sem_seg_root, image_root=image_root, evaluator_type="sem_seg", ignore_label=255, **metadata
    )


def merge_to_panoptic(detection_dicts: List[Dict], sem_seg_dicts: List[Dict]) -> List[Dict]:
    """Each detection dict updated with the semantic-segmentation dict of the same file_name."""
    sem_seg_by_file = {x["file_name"]: x for x in sem_seg_dicts}
    if not sem_seg_by_file:
        raise ValueError("merge_to_panoptic: sem_seg_dicts is empty")
    results = []
    for det_dict in detection_dicts:
        dic = copy.copy(det_dict)
        try:
            dic.update(sem_seg_by_file[dic["file_name"]])
        except KeyError as e:
            raise KeyError(f"merge_to_panoptic: no semantic segmentation for image {dic['file_name']}") from e
        results.append(dic)
    return results
