"""Pascal VOC detection annotations (VOCdevkit layout: Annotations/*.xml,
ImageSets/Main/<split>.txt, JPEGImages/*.jpg)."""
import os
import xml.etree.ElementTree as ET
from typing import Dict, List, Sequence, Tuple, Union

from detectron2.structures import BoxMode
from detectron2.utils.file_io import PathManager

from ..catalog import DatasetCatalog, MetadataCatalog

__all__ = ["load_voc_instances", "register_pascal_voc"]

# fmt: off
CLASS_NAMES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
    "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)
# fmt: on


def _read_split(dirname: str, split: str) -> List[str]:
    with PathManager.open(os.path.join(dirname, "ImageSets", "Main", split + ".txt")) as f:
        return [line.strip() for line in f if line.strip()]


def _parse_voc_xml(anno_file: str, class_names: Sequence[str]) -> Tuple[int, int, List[Dict]]:
    with PathManager.open(anno_file) as f:
        tree = ET.parse(f)
    height = int(tree.findall("./size/height")[0].text)
    width = int(tree.findall("./size/width")[0].text)
    instances = []
    for obj in tree.findall("object"):
        cls = obj.find("name").text.strip()
        if cls not in class_names:
            raise ValueError(f"{anno_file}: class '{cls}' is not one of class_names {list(class_names)}")
        # "difficult" objects are kept: they help training (evaluation ignores them).
        bndbox = obj.find("bndbox")
        bbox = [float(bndbox.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax")]
        # VOC boxes are 1-based inclusive pixel indices: (1, W) spans the whole image,
        # which is [0, W] in continuous coordinates.
        bbox[0] -= 1.0
        bbox[1] -= 1.0
        instances.append({"category_id": list(class_names).index(cls), "bbox": bbox, "bbox_mode": BoxMode.XYXY_ABS})
    return height, width, instances


def load_voc_instances(dirname: str, split: str, class_names: Union[List[str], Tuple[str, ...]]) -> List[Dict]:
    """Load Pascal VOC detection annotations.

    Args:
        dirname: a VOC year directory, e.g. "VOC2007", holding "Annotations",
            "ImageSets" and "JPEGImages".
        split: "train", "val", "trainval" or "test" (a file of ImageSets/Main).
        class_names: the classes; category_id is the index in this sequence.

    Returns:
        list[dict] with file_name, image_id (the file id string), height, width and
        annotations (XYXY_ABS boxes, category_id).
    """
    annotation_dirname = PathManager.get_local_path(os.path.join(dirname, "Annotations/"))
    dicts = []
    for fileid in _read_split(dirname, split):
        height, width, instances = _parse_voc_xml(os.path.join(annotation_dirname, fileid + ".xml"), class_names)
        dicts.append(
            {
                "file_name": os.path.join(dirname, "JPEGImages", fileid + ".jpg"),
                "image_id": fileid,
                "height": height,
                "width": width,
                "annotations": instances,
            }
        )
    return dicts


def register_pascal_voc(name: str, dirname: str, split: str, year: int, class_names: Sequence[str] = CLASS_NAMES) -> None:
    """Register a VOC split under ``name`` (nothing is read until it is loaded)."""
    DatasetCatalog.register(name, lambda: load_voc_instances(dirname, split, class_names))
    MetadataCatalog.get(name).set(thing_classes=list(class_names), dirname=dirname, year=year, split=split)
