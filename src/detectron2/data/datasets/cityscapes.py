"""Cityscapes fine annotations: instances (from the polygon jsons or the instanceIds
pngs) and semantic segmentation (labelTrainIds pngs).

Layout: leftImg8bit/<split>/<city>/<name>_leftImg8bit.png and
gtFine/<split>/<city>/<name>_gtFine_{instanceIds.png,labelIds.png,polygons.json}.
The label table (ids, train ids, which classes have instances) is torchvision's
``Cityscapes.classes``, the same facts as cityscapesScripts' ``labels``.
"""
import functools
import json
import logging
import os
from itertools import chain
from typing import Dict, List, Tuple

import numpy as np
import pycocotools.mask as mask_util

from detectron2.structures import BoxMode
from detectron2.utils.file_io import PathManager

__all__ = ["load_cityscapes_instances", "load_cityscapes_semantic"]

logger = logging.getLogger(__name__)

_IMAGE_SUFFIX = "leftImg8bit.png"


@functools.lru_cache()
def _labels():
    from torchvision.datasets import Cityscapes

    return Cityscapes.classes


def _get_cityscapes_files(image_dir: str, gt_dir: str) -> List[Tuple[str, str, str, str]]:
    """(image, instanceIds png, labelIds png, polygons json) of every image, city by city."""
    files = []
    for city in sorted(PathManager.ls(image_dir)):
        city_img_dir = os.path.join(image_dir, city)
        city_gt_dir = os.path.join(gt_dir, city)
        for basename in sorted(PathManager.ls(city_img_dir)):
            if not basename.endswith(_IMAGE_SUFFIX):
                raise ValueError(f"Unexpected file {basename} in {city_img_dir}: images end with {_IMAGE_SUFFIX}")
            stem = basename[: -len(_IMAGE_SUFFIX)]
            files.append(
                (
                    os.path.join(city_img_dir, basename),
                    os.path.join(city_gt_dir, stem + "gtFine_instanceIds.png"),
                    os.path.join(city_gt_dir, stem + "gtFine_labelIds.png"),
                    os.path.join(city_gt_dir, stem + "gtFine_polygons.json"),
                )
            )
    if not files:
        raise FileNotFoundError(f"No images found in {image_dir}")
    for f in files[0]:
        if not PathManager.isfile(f):
            raise FileNotFoundError(f)
    return files


def load_cityscapes_instances(image_dir: str, gt_dir: str, from_json: bool = True, to_polygons: bool = True) -> List[Dict]:
    """Load Cityscapes instance annotations.

    Args:
        image_dir: e.g. "cityscapes/leftImg8bit/train".
        gt_dir: e.g. "cityscapes/gtFine/train".
        from_json: read the polygon jsons (exact polygons, needs shapely); otherwise
            the instanceIds pngs.
        to_polygons: with pngs, turn masks into polygons (else RLE).

    Returns:
        list[dict] in detectron2's format; category_id is contiguous over the 8 classes
        with instances (person, rider, car, truck, bus, train, motorcycle, bicycle).
    """
    if from_json and not to_polygons:
        raise ValueError("Cityscapes's json annotations are in polygon format; use to_polygons=True with from_json")
    files = _get_cityscapes_files(image_dir, gt_dir)
    logger.info(f"Preprocessing cityscapes annotations of {len(files)} images ...")
    ret = [_cityscapes_files_to_dict(f, from_json, to_polygons) for f in files]
    logger.info(f"Loaded {len(ret)} images from {image_dir}")
    contiguous = {l.id: i for i, l in enumerate(l for l in _labels() if l.has_instances and not l.ignore_in_eval)}
    for record in ret:
        for anno in record["annotations"]:
            anno["category_id"] = contiguous[anno["category_id"]]
    return ret


def load_cityscapes_semantic(image_dir: str, gt_dir: str) -> List[Dict]:
    """Images with their labelTrainIds pngs (made by cityscapesScripts'
    createTrainIdLabelImgs), and sizes from the polygon jsons."""
    ret = []
    for image_file, _, label_file, json_file in _get_cityscapes_files(image_dir, gt_dir):
        with PathManager.open(json_file) as f:
            jsonobj = json.load(f)
        ret.append(
            {
                "file_name": image_file,
                "sem_seg_file_name": label_file.replace("labelIds", "labelTrainIds"),
                "height": jsonobj["imgHeight"],
                "width": jsonobj["imgWidth"],
            }
        )
    if not PathManager.isfile(ret[0]["sem_seg_file_name"]):
        raise FileNotFoundError(
            f"{ret[0]['sem_seg_file_name']} is missing: generate labelTrainIds.png with "
            "cityscapesscripts/preparation/createTrainIdLabelImgs.py"
        )
    return ret


def _cityscapes_files_to_dict(files: Tuple[str, str, str, str], from_json: bool, to_polygons: bool) -> Dict:
    image_file, instance_id_file, _, json_file = files
    record = {"file_name": image_file, "image_id": os.path.basename(image_file)}
    if from_json:
        with PathManager.open(json_file) as f:
            jsonobj = json.load(f)
        record["height"], record["width"] = jsonobj["imgHeight"], jsonobj["imgWidth"]
        record["annotations"] = _annotations_from_polygons(jsonobj["objects"])
    else:
        from PIL import Image

        with PathManager.open(instance_id_file, "rb") as f:
            inst_image = np.asarray(Image.open(f), order="F")
        record["height"], record["width"] = inst_image.shape
        record["annotations"] = _annotations_from_instance_ids(inst_image, to_polygons)
    return record


def _annotations_from_polygons(objects: List[Dict]) -> List[Dict]:
    from shapely.geometry import MultiPolygon, Polygon

    name2label = {l.name: l for l in _labels()}
    annos = []
    # The pngs are drawn from the polygons in file order, later ones over earlier
    # ones: walking backwards and subtracting what is already covered reproduces that.
    covered = Polygon()
    for obj in reversed(objects):
        if "deleted" in obj:  # cityscapes annotation-tool artefacts
            continue
        label_name = obj["label"]
        label = name2label.get(label_name)
        if label is None and label_name.endswith("group"):
            label = name2label.get(label_name[: -len("group")])
        if label is None:
            raise KeyError(f"Unknown cityscapes label '{label_name}'")
        if label.id < 0:  # e.g. "license plate", not part of the evaluation
            continue
        # Vertices are pixel indices: +0.5 moves them to pixel centres, and the 0.5 px
        # buffer makes the polygon cover the pixels the png marks.
        poly = Polygon(np.asarray(obj["polygon"], dtype="f4") + 0.5).buffer(0.5, 4)
        if not label.has_instances or label.ignore_in_eval:
            covered = covered.union(poly)
            continue
        visible = poly.difference(covered)
        if visible.is_empty:
            continue
        covered = covered.union(poly)
        if isinstance(visible, Polygon):
            parts = [visible]
        elif isinstance(visible, MultiPolygon):
            parts = list(visible.geoms)
        else:
            parts = [g for g in getattr(visible, "geoms", []) if isinstance(g, Polygon)]
        # COCO polygons have no holes: keep the exterior rings.
        segmentation = [list(chain(*p.exterior.coords)) for p in parts if not p.is_empty]
        xmin, ymin, xmax, ymax = visible.bounds
        annos.append(
            {
                "iscrowd": label_name.endswith("group"),
                "category_id": label.id,
                "segmentation": segmentation,
                "bbox": (xmin, ymin, xmax, ymax),
                "bbox_mode": BoxMode.XYXY_ABS,
            }
        )
    return annos


def _annotations_from_instance_ids(inst_image: np.ndarray, to_polygons: bool) -> List[Dict]:
    # instanceIds: label_id * 1000 + k for individual instances, label_id for crowds.
    id2label = {l.id: l for l in _labels()}
    annos = []
    for instance_id in np.unique(inst_image):
        label_id = int(instance_id) // 1000 if instance_id >= 1000 else int(instance_id)
        label = id2label[label_id]
        if not label.has_instances or label.ignore_in_eval:
            continue
        mask = np.asarray(inst_image == instance_id, dtype=np.uint8, order="F")
        ys, xs = np.nonzero(mask)
        xmin, xmax, ymin, ymax = xs.min(), xs.max(), ys.min(), ys.max()
        if xmax <= xmin or ymax <= ymin:
            continue
        anno = {
            "iscrowd": bool(instance_id < 1000),
            "category_id": label.id,
            "bbox": (float(xmin), float(ymin), float(xmax), float(ymax)),
            "bbox_mode": BoxMode.XYXY_ABS,
        }
        if to_polygons:
            import cv2

            contours = cv2.findContours(mask.copy(), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)[-2]
            polygons = [c.reshape(-1).tolist() for c in contours if len(c) >= 3]
            if not polygons:
                continue
            anno["segmentation"] = polygons
        else:
            anno["segmentation"] = mask_util.encode(mask[:, :, None])[0]
        annos.append(anno)
    return annos
