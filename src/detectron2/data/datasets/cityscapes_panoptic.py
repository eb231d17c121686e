"""Cityscapes panoptic segmentation (the format written by cityscapesScripts'
``createPanopticImgs.py``): a COCO-panoptic style json and pngs under
gtFine/cityscapes_panoptic_<split>/, plus the labelTrainIds pngs for semantic labels."""
import json
import logging
import os
from typing import Dict, List, Tuple

from detectron2.utils.file_io import PathManager

from ..catalog import DatasetCatalog, MetadataCatalog

__all__ = ["CITYSCAPES_CATEGORIES", "load_cityscapes_panoptic", "register_all_cityscapes_panoptic", "get_cityscapes_panoptic_categories"]

logger = logging.getLogger(__name__)

_IMAGE_SUFFIX = "_leftImg8bit.png"

# name -> (image dir, panoptic png dir, panoptic json), relative to the datasets root
_RAW_CITYSCAPES_PANOPTIC_SPLITS = {
    "cityscapes_fine_panoptic_train": (
        "cityscapes/leftImg8bit/train",
        "cityscapes/gtFine/cityscapes_panoptic_train",
        "cityscapes/gtFine/cityscapes_panoptic_train.json",
    ),
    "cityscapes_fine_panoptic_val": (
        "cityscapes/leftImg8bit/val",
        "cityscapes/gtFine/cityscapes_panoptic_val",
        "cityscapes/gtFine/cityscapes_panoptic_val.json",
    ),
}


# The 19 evaluated classes in train-id order: label id, train id, color, and whether the
# class has instances (facts of the Cityscapes label table).
CITYSCAPES_CATEGORIES = [
    {"color": (128, 64, 128), "isthing": 0, "id": 7, "trainId": 0, "name": "road"},
    {"color": (244, 35, 232), "isthing": 0, "id": 8, "trainId": 1, "name": "sidewalk"},
    {"color": (70, 70, 70), "isthing": 0, "id": 11, "trainId": 2, "name": "building"},
    {"color": (102, 102, 156), "isthing": 0, "id": 12, "trainId": 3, "name": "wall"},
    {"color": (190, 153, 153), "isthing": 0, "id": 13, "trainId": 4, "name": "fence"},
    {"color": (153, 153, 153), "isthing": 0, "id": 17, "trainId": 5, "name": "pole"},
    {"color": (250, 170, 30), "isthing": 0, "id": 19, "trainId": 6, "name": "traffic light"},
    {"color": (220, 220, 0), "isthing": 0, "id": 20, "trainId": 7, "name": "traffic sign"},
    {"color": (107, 142, 35), "isthing": 0, "id": 21, "trainId": 8, "name": "vegetation"},
    {"color": (152, 251, 152), "isthing": 0, "id": 22, "trainId": 9, "name": "terrain"},
    {"color": (70, 130, 180), "isthing": 0, "id": 23, "trainId": 10, "name": "sky"},
    {"color": (220, 20, 60), "isthing": 1, "id": 24, "trainId": 11, "name": "person"},
    {"color": (255, 0, 0), "isthing": 1, "id": 25, "trainId": 12, "name": "rider"},
    {"color": (0, 0, 142), "isthing": 1, "id": 26, "trainId": 13, "name": "car"},
    {"color": (0, 0, 70), "isthing": 1, "id": 27, "trainId": 14, "name": "truck"},
    {"color": (0, 60, 100), "isthing": 1, "id": 28, "trainId": 15, "name": "bus"},
    {"color": (0, 80, 100), "isthing": 1, "id": 31, "trainId": 16, "name": "train"},
    {"color": (0, 0, 230), "isthing": 1, "id": 32, "trainId": 17, "name": "motorcycle"},
    {"color": (119, 11, 32), "isthing": 1, "id": 33, "trainId": 18, "name": "bicycle"},
]


def get_cityscapes_panoptic_categories() -> Tuple[Dict, ...]:
    """The 19 evaluated classes: dicts with color, isthing, id (label id), trainId and name."""
    return tuple(dict(c) for c in CITYSCAPES_CATEGORIES)


def _panoptic_metadata() -> Dict:
    cats = get_cityscapes_panoptic_categories()
    names = [c["name"] for c in cats]
    colors = [c["color"] for c in cats]
    # thing_* and stuff_* both cover all 19 classes, indexed by train id, so the
    # visualizer works for either kind of segment.
    return {
        "thing_classes": list(names),
        "thing_colors": list(colors),
        "stuff_classes": list(names),
        "stuff_colors": list(colors),
        "thing_dataset_id_to_contiguous_id": {c["id"]: c["trainId"] for c in cats if c["isthing"]},
        "stuff_dataset_id_to_contiguous_id": {c["id"]: c["trainId"] for c in cats if not c["isthing"]},
    }


def _image_files(image_dir: str) -> Dict[str, str]:
    """image id (city_seq_frame) -> path of its leftImg8bit png."""
    files = {}
    cities = PathManager.ls(image_dir)
    logger.info(f"{len(cities)} cities found in '{image_dir}'.")
    for city in cities:
        city_dir = os.path.join(image_dir, city)
        for basename in PathManager.ls(city_dir):
            if not basename.endswith(_IMAGE_SUFFIX):
                raise ValueError(f"unexpected file {os.path.join(city_dir, basename)}: images end with {_IMAGE_SUFFIX}")
            files[basename[: -len(_IMAGE_SUFFIX)]] = os.path.join(city_dir, basename)
    return files


def _convert_category_id(segment_info: Dict, meta: Dict) -> Dict:
    cid = segment_info["category_id"]
    if cid in meta["thing_dataset_id_to_contiguous_id"]:
        segment_info["category_id"] = meta["thing_dataset_id_to_contiguous_id"][cid]
    elif cid in meta["stuff_dataset_id_to_contiguous_id"]:
        segment_info["category_id"] = meta["stuff_dataset_id_to_contiguous_id"][cid]
    else:
        raise KeyError(f"segment {segment_info.get('id')} has category_id {cid}, not an evaluated Cityscapes class")
    return segment_info


def load_cityscapes_panoptic(image_dir: str, gt_dir: str, gt_json: str, meta: Dict) -> List[Dict]:
    """
    Args:
        image_dir: e.g. "cityscapes/leftImg8bit/train".
        gt_dir: e.g. "cityscapes/gtFine/cityscapes_panoptic_train".
        gt_json: e.g. "cityscapes/gtFine/cityscapes_panoptic_train.json".
        meta: with "thing_dataset_id_to_contiguous_id" and "stuff_dataset_id_to_contiguous_id".

    Returns:
        dicts in Detectron2 standard format with file_name, image_id, sem_seg_file_name
        (labelTrainIds png), pan_seg_file_name and segments_info (contiguous category ids).
    """
    if not PathManager.isfile(gt_json):
        raise FileNotFoundError(
            f"{gt_json} does not exist: run `python cityscapesscripts/preparation/createPanopticImgs.py` to create it"
        )
    with PathManager.open(gt_json) as f:
        json_info = json.load(f)
    images = _image_files(image_dir)
    ret = []
    for ann in json_info["annotations"]:
        image_file = images.get(ann["image_id"])
        if image_file is None:
            raise FileNotFoundError(f"no image {ann['image_id']} in {image_dir} for annotation {ann['file_name']}")
        sem_file = image_file.replace("leftImg8bit", "gtFine").split(".")[0] + "_labelTrainIds.png"
        ret.append(
            {
                "file_name": image_file,
                "image_id": "_".join(os.path.splitext(os.path.basename(image_file))[0].split("_")[:3]),
                "sem_seg_file_name": sem_file,
                "pan_seg_file_name": os.path.join(gt_dir, ann["file_name"]),
                "segments_info": [_convert_category_id(dict(s), meta) for s in ann["segments_info"]],
            }
        )
    if not ret:
        raise FileNotFoundError(f"no annotated images found in {image_dir}")
    if not PathManager.isfile(ret[0]["sem_seg_file_name"]):
        raise FileNotFoundError(
            f"{ret[0]['sem_seg_file_name']} does not exist: create the labelTrainIds pngs with "
            "cityscapesscripts/preparation/createTrainIdLabelImgs.py"
        )
    if not PathManager.isfile(ret[0]["pan_seg_file_name"]):
        raise FileNotFoundError(
            f"{ret[0]['pan_seg_file_name']} does not exist: run cityscapesscripts/preparation/createPanopticImgs.py"
        )
    return ret


def register_all_cityscapes_panoptic(root: str) -> None:
    """Register cityscapes_fine_panoptic_{train,val} under ``root``."""
    meta = _panoptic_metadata()
    for key, (image_dir, gt_dir, gt_json) in _RAW_CITYSCAPES_PANOPTIC_SPLITS.items():
        image_dir = os.path.join(root, image_dir)
        gt_dir = os.path.join(root, gt_dir)
        gt_json = os.path.join(root, gt_json)
        DatasetCatalog.register(key, lambda x=image_dir, y=gt_dir, z=gt_json: load_cityscapes_panoptic(x, y, z, meta))
        MetadataCatalog.get(key).set(
            panoptic_root=gt_dir,
            image_root=image_dir,
            panoptic_json=gt_json,
            gt_dir=gt_dir.replace("cityscapes_panoptic_", ""),
            evaluator_type="cityscapes_panoptic_seg",
            ignore_label=255,
            label_divisor=1000,
            **meta,
        )
