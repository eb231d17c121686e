"""A generated toy dataset in COCO format: coloured circles, squares and triangles.

Every instance has an exact box, an exact polygon (the circle is a 32-gon, drawn as
that same polygon) and 4 keypoints, so detection, instance segmentation and keypoint
models can all train on it, on CPU, in minutes. Shapes never overlap, so each polygon
is the instance's whole visible mask. Image ``i`` depends only on ``(seed, i)``.

Keypoints, in this order (the horizontal flip swaps the two bottom ones):
    top:           apex of the triangle, top edge midpoint of the square, top of the circle
    bottom_left:   bottom-left corner (circle: the point at 135 degrees)
    bottom_right:  bottom-right corner (circle: the point at 45 degrees)
    center:        centre of the shape's box

Coordinates in the json follow COCO: boxes and polygons are continuous (pixel i spans
[i, i + 1]); keypoints are stored 0.5 lower, as COCO's pixel indices, so that
load_coco_json's +0.5 gives back the exact continuous points.

A keypoint model on this data needs MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS = 4 and, for
COCO keypoint evaluation, TEST.KEYPOINT_OKS_SIGMAS = SHAPES_KEYPOINT_OKS_SIGMAS.
"""
import json
import math
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .coco import register_coco_instances

__all__ = [
    "SHAPE_CLASSES",
    "SHAPES_KEYPOINT_NAMES",
    "SHAPES_KEYPOINT_FLIP_MAP",
    "SHAPES_KEYPOINT_OKS_SIGMAS",
    "generate_shapes_dataset",
    "get_shapes_metadata",
    "register_shapes",
]

SHAPE_CLASSES = ("circle", "square", "triangle")
SHAPES_KEYPOINT_NAMES = ("top", "bottom_left", "bottom_right", "center")
SHAPES_KEYPOINT_FLIP_MAP = (("bottom_left", "bottom_right"),)
SHAPES_KEYPOINT_CONNECTION_RULES = [
    ("top", "bottom_left", (255, 128, 0)),
    ("top", "bottom_right", (0, 128, 255)),
    ("bottom_left", "bottom_right", (128, 255, 0)),
]
# Keypoints are exact corners and centres: tighter than COCO's body-joint sigmas.
SHAPES_KEYPOINT_OKS_SIGMAS = [0.05, 0.05, 0.05, 0.05]
_THING_COLORS = [[220, 20, 60], [0, 0, 142], [0, 150, 60]]

_CIRCLE_VERTICES = 32  # a multiple of 8, so that all circle keypoints are vertices
_FORMAT_VERSION = 2


def _shape_polygon(kind: int, cx: float, cy: float, size: float) -> Tuple[np.ndarray, np.ndarray]:
    """(polygon Nx2, keypoints 4x2) of a shape of class ``kind`` with box side ``size``."""
    h = size / 2.0
    if SHAPE_CLASSES[kind] == "circle":
        angles = np.arange(_CIRCLE_VERTICES) * (2 * math.pi / _CIRCLE_VERTICES)
        poly = np.stack([cx + h * np.cos(angles), cy + h * np.sin(angles)], axis=1)
        # y grows downwards: angle 270 is the top, 135 bottom-left, 45 bottom-right.
        kps = poly[[_CIRCLE_VERTICES * 3 // 4, _CIRCLE_VERTICES * 3 // 8, _CIRCLE_VERTICES // 8]]
    elif SHAPE_CLASSES[kind] == "square":
        poly = np.array([[cx - h, cy - h], [cx + h, cy - h], [cx + h, cy + h], [cx - h, cy + h]])
        kps = np.array([[cx, cy - h], poly[3], poly[2]])
    else:
        poly = np.array([[cx, cy - h], [cx + h, cy + h], [cx - h, cy + h]])
        kps = np.array([poly[0], poly[2], poly[1]])
    return poly, np.concatenate([kps, [[cx, cy]]], axis=0)


def _distinct_color(rng: np.random.Generator, background: np.ndarray) -> np.ndarray:
    """A colour far enough from every background colour to be seen (best of a few draws)."""
    best, best_dist = None, -1.0
    for _ in range(8):
        color = rng.integers(0, 256, size=3)
        dist = float(np.abs(color[None, :] - background).sum(axis=1).min())
        if dist > best_dist:
            best, best_dist = color, dist
        if dist >= 200:
            break
    return best


def _gradient_background(rng: np.random.Generator, height: int, width: int) -> Tuple[np.ndarray, np.ndarray]:
    """A linear gradient between two nearby random colours in a random direction (some
    variety that, unlike pixel noise, PNG compresses well). Returns (image, end colours)."""
    c0 = rng.integers(0, 256, size=3)
    c1 = np.clip(c0 + rng.integers(-60, 61, size=3), 0, 255)
    angle = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    t = xs * math.cos(angle) + ys * math.sin(angle)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
    image = c0.astype(np.float32) + t[..., None] * (c1 - c0).astype(np.float32)
    return np.round(image).astype(np.uint8), np.stack([c0, c1])


def _place_shapes(
    rng: np.random.Generator, height: int, width: int, max_shapes: int, min_size: float, max_size: float
) -> List[Tuple[int, float, float, float]]:
    """Non-overlapping (class, cx, cy, size), by rejection sampling of square boxes."""
    shapes: List[Tuple[int, float, float, float]] = []
    boxes: List[Tuple[float, float, float, float]] = []
    margin = 2.0  # keeps antialiased edges of neighbours apart
    target = int(rng.integers(1, max_shapes + 1))
    for _ in range(target * 10):
        if len(shapes) == target:
            break
        size = float(rng.uniform(min_size, max_size))
        cx = float(rng.uniform(size / 2 + 1, width - size / 2 - 1))
        cy = float(rng.uniform(size / 2 + 1, height - size / 2 - 1))
        box = (cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2)
        if any(
            box[0] < b[2] + margin and b[0] < box[2] + margin and box[1] < b[3] + margin and b[1] < box[3] + margin
            for b in boxes
        ):
            continue
        boxes.append(box)
        shapes.append((int(rng.integers(len(SHAPE_CLASSES))), cx, cy, size))
    return shapes


def _render_image(
    rng: np.random.Generator, height: int, width: int, shapes: Sequence[Tuple[int, float, float, float]], noise: float
) -> Tuple[np.ndarray, List[Tuple[int, np.ndarray, np.ndarray]]]:
    import cv2

    image, background = _gradient_background(rng, height, width)
    instances = []
    for kind, cx, cy, size in shapes:
        poly, kps = _shape_polygon(kind, cx, cy, size)
        color = _distinct_color(rng, background)
        # cv2 puts pixel centres on integers (ours at i + 0.5); shift=4 gives 1/16 px precision.
        pts = np.round((poly - 0.5) * 16).astype(np.int32)
        cv2.fillPoly(image, [pts], color=[int(c) for c in color], lineType=cv2.LINE_AA, shift=4)
        instances.append((kind, poly, kps))
    if noise > 0:
        jitter = rng.standard_normal(size=image.shape, dtype=np.float32) * noise
        image = np.clip(image + jitter, 0, 255).astype(np.uint8)
    return image, instances


def _coco_annotation(ann_id: int, image_id: int, kind: int, poly: np.ndarray, kps: np.ndarray) -> Dict[str, Any]:
    x0, y0 = poly.min(axis=0)
    x1, y1 = poly.max(axis=0)
    x, y = poly[:, 0], poly[:, 1]
    area = 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))  # shoelace
    keypoints = []
    for kx, ky in kps:
        keypoints += [round(float(kx) - 0.5, 3), round(float(ky) - 0.5, 3), 2]
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": kind + 1,
        "bbox": [round(float(v), 3) for v in (x0, y0, x1 - x0, y1 - y0)],
        "area": round(area, 3),
        "segmentation": [[round(float(v), 3) for v in poly.reshape(-1)]],
        "iscrowd": 0,
        "keypoints": keypoints,
        "num_keypoints": len(kps),
    }


def _categories() -> List[Dict[str, Any]]:
    names = list(SHAPES_KEYPOINT_NAMES)
    skeleton = [[names.index(a) + 1, names.index(b) + 1] for a, b, _ in SHAPES_KEYPOINT_CONNECTION_RULES]
    return [
        {"id": i + 1, "name": name, "supercategory": "shape", "keypoints": names, "skeleton": skeleton}
        for i, name in enumerate(SHAPE_CLASSES)
    ]


def _atomic_write_json(obj: Any, path: str) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)  # readers see the old file or the new one, never a partial one


def _cached(json_path: str, image_dir: str, params: Dict[str, Any]) -> bool:
    """Whether ``json_path`` was generated with the same parameters and its images exist."""
    try:
        with open(json_path) as f:
            info = json.load(f).get("info", {})
    except (OSError, ValueError):
        return False
    if info.get("generator") != params:
        return False
    return all(os.path.isfile(os.path.join(image_dir, f"{i:06d}.png")) for i in range(params["num_images"]))


def generate_shapes_dataset(
    root: str,
    num_images: int = 100,
    image_size: Union[int, Tuple[int, int]] = 128,
    seed: int = 0,
    *,
    max_shapes: int = 4,
    min_shape_size: Optional[float] = None,
    max_shape_size: Optional[float] = None,
    noise: float = 0.0,
    json_name: str = "annotations.json",
    image_dirname: str = "images",
    overwrite: bool = False,
) -> str:
    """Write a shapes dataset: ``root/image_dirname/000000.png ...`` and ``root/json_name``.

    Args:
        root: output directory (created).
        num_images: number of images.
        image_size: side of the square images, or (height, width).
        seed: images are a pure function of (seed, image index).
        max_shapes: 1..max_shapes shapes per image (fewer if they do not fit).
        min_shape_size, max_shape_size: range of the shapes' box side in pixels
            (default: 1/8 and 1/3 of the shorter image side, at least 8 px).
        noise: std of gaussian pixel noise added to the image (0: none; noise makes
            the PNGs several times slower to write and larger).
        overwrite: regenerate even when root already holds a dataset generated with
            the same parameters (otherwise it is reused as is).

    Returns:
        the path of the COCO json. It is written last, atomically, so its presence
        means the images are complete.
    """
    height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    short = min(height, width)
    min_size = float(min_shape_size if min_shape_size is not None else max(8.0, short / 8))
    max_size = float(max_shape_size if max_shape_size is not None else max(min_size, short / 3))
    if num_images < 0 or max_shapes < 1:
        raise ValueError(f"num_images must be >= 0 and max_shapes >= 1, got {num_images} and {max_shapes}")
    if not 0 < min_size <= max_size <= short - 4:
        raise ValueError(
            f"shape sizes must satisfy 0 < min_shape_size <= max_shape_size <= {short - 4} for images of "
            f"{height}x{width}, got {min_size} and {max_size}"
        )
    params = {
        "version": _FORMAT_VERSION,
        "num_images": int(num_images),
        "height": int(height),
        "width": int(width),
        "seed": int(seed),
        "max_shapes": int(max_shapes),
        "min_shape_size": min_size,
        "max_shape_size": max_size,
        "noise": float(noise),
    }
    image_dir = os.path.join(root, image_dirname)
    json_path = os.path.join(root, json_name)
    if not overwrite and _cached(json_path, image_dir, params):
        return json_path
    os.makedirs(image_dir, exist_ok=True)
    images, annotations = _write_images(image_dir, params)
    coco = {
        "info": {"description": "detectron2 generated shapes dataset", "generator": params},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": _categories(),
    }
    _atomic_write_json(coco, json_path)
    return json_path


def _write_images(image_dir: str, params: Dict[str, Any]) -> Tuple[List[Dict], List[Dict]]:
    import cv2

    height, width = params["height"], params["width"]
    images, annotations = [], []
    for index in range(params["num_images"]):
        rng = np.random.default_rng([params["seed"], index])
        shapes = _place_shapes(rng, height, width, params["max_shapes"], params["min_shape_size"], params["max_shape_size"])
        image, instances = _render_image(rng, height, width, shapes, params["noise"])
        file_name = f"{index:06d}.png"
        if not cv2.imwrite(os.path.join(image_dir, file_name), image, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
            raise OSError(f"could not write {os.path.join(image_dir, file_name)}")
        image_id = index + 1
        images.append({"id": image_id, "file_name": file_name, "height": height, "width": width})
        for kind, poly, kps in instances:
            annotations.append(_coco_annotation(len(annotations) + 1, image_id, kind, poly, kps))
    return images, annotations


def get_shapes_metadata() -> Dict[str, Any]:
    """Metadata of a shapes dataset (classes, keypoint names, flip map, colours)."""
    return {
        "thing_classes": list(SHAPE_CLASSES),
        "thing_dataset_id_to_contiguous_id": {i + 1: i for i in range(len(SHAPE_CLASSES))},
        "thing_colors": [list(c) for c in _THING_COLORS],
        "keypoint_names": SHAPES_KEYPOINT_NAMES,
        "keypoint_flip_map": SHAPES_KEYPOINT_FLIP_MAP,
        "keypoint_connection_rules": SHAPES_KEYPOINT_CONNECTION_RULES,
    }


def register_shapes(name: str, root: str, json_name: str = "annotations.json", image_dirname: str = "images") -> None:
    """Register the shapes dataset under ``root`` (as written by generate_shapes_dataset)
    with DatasetCatalog and MetadataCatalog; nothing is read (or generated) now."""
    register_coco_instances(
        name, get_shapes_metadata(), os.path.join(root, json_name), os.path.join(root, image_dirname)
    )
