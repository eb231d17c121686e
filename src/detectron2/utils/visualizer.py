"""Draw predictions and annotations (boxes, rotated boxes, masks, keypoints, semantic and
panoptic segmentation) on an image with matplotlib's Agg backend.

Metadata is duck-typed: any object whose attributes are the dataset's metadata
(``thing_classes``, ``thing_colors``, ``stuff_classes``, ``stuff_colors``,
``keypoint_names``, ``keypoint_connection_rules``, ``label_divisor``,
``thing_dataset_id_to_contiguous_id`` ...), such as ``detectron2.data.Metadata``.
"""
import colorsys
import logging
import math
from enum import Enum, unique
from typing import Any, Iterator, List, Optional, Sequence, Tuple

import cv2
import matplotlib as mpl
import matplotlib.collections  # noqa: F401  (mpl.collections)
import matplotlib.colors as mplc
import matplotlib.figure as mplfigure
import numpy as np
import pycocotools.mask as mask_util
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image

from detectron2.structures import BitMasks, Boxes, BoxMode, Keypoints, PolygonMasks, RotatedBoxes

from .colormap import random_color
from .file_io import PathManager

logger = logging.getLogger(__name__)

__all__ = ["ColorMode", "VisImage", "Visualizer", "GenericMask"]

_SMALL_OBJECT_AREA_THRESH = 1000
_LARGE_MASK_AREA_THRESH = 120000
_OFF_WHITE = (1.0, 1.0, 240.0 / 255)
_BLACK = (0, 0, 0)
_RED = (1.0, 0, 0)
_KEYPOINT_THRESHOLD = 0.05


def _meta(metadata: Any, name: str, default: Any = None) -> Any:
    """A metadata field, or ``default`` when the metadata does not have it."""
    return default if metadata is None else getattr(metadata, name, default)


@unique
class ColorMode(Enum):
    """How instances are coloured.

    IMAGE: a random colour per instance, drawn with low opacity over the image.
    SEGMENTATION: the same colour for all instances of a class (``thing_colors``),
        opaque enough to read as a segmentation.
    IMAGE_BW: like IMAGE, but everything outside the predicted masks turns grey.
    """

    IMAGE = 0
    SEGMENTATION = 1
    IMAGE_BW = 2


class GenericMask:
    """One instance mask in any of the three formats (a binary HxW array, a list of
    polygons, or a COCO RLE dict), converted to the others on demand.

    Attributes:
        mask (ndarray): HxW uint8 binary mask.
        polygons (list[ndarray]): flat [x0, y0, x1, y1, ...] polygons, pixel-corner coordinates.
        has_holes (bool): whether the mask has holes (then the polygons cannot draw it).
    """

    def __init__(self, mask_or_polygons: Any, height: int, width: int):
        self._mask = self._polygons = self._has_holes = None
        self.height, self.width = height, width
        m = mask_or_polygons
        if isinstance(m, dict):  # COCO RLE, compressed or not
            assert "counts" in m and "size" in m, f"not an RLE: {m.keys()}"
            if isinstance(m["counts"], list):
                m = mask_util.frPyObjects(m, *m["size"])
            self._mask = mask_util.decode(m)[:, :]
            assert self._mask.shape == (height, width), (self._mask.shape, height, width)
        elif isinstance(m, list):
            self._polygons = [np.asarray(p, dtype=np.float64).reshape(-1) for p in m]
        elif isinstance(m, (np.ndarray, torch.Tensor)):
            m = np.asarray(m.cpu() if isinstance(m, torch.Tensor) else m)
            assert m.shape == (height, width), f"mask of shape {m.shape}, image of {(height, width)}"
            self._mask = m.astype(np.uint8)
        else:
            raise ValueError(f"GenericMask cannot handle an object of type '{type(m)}'")

    @property
    def mask(self) -> np.ndarray:
        if self._mask is None:
            self._mask = self.polygons_to_mask(self._polygons)
        return self._mask

    @property
    def polygons(self) -> List[np.ndarray]:
        if self._polygons is None:
            self._polygons, self._has_holes = self.mask_to_polygons(self._mask)
        return self._polygons

    @property
    def has_holes(self) -> bool:
        if self._has_holes is None:
            if self._mask is not None:
                self._polygons, self._has_holes = self.mask_to_polygons(self._mask)
            else:
                self._has_holes = False  # polygons given by the user are taken as hole-free
        return self._has_holes

    def mask_to_polygons(self, mask: np.ndarray) -> Tuple[List[np.ndarray], bool]:
        # CCOMP gives outer boundaries and holes in a two-level hierarchy; a contour with
        # a parent is a hole. findContours may modify its input, hence the copy.
        mask = np.ascontiguousarray(mask).astype(np.uint8)
        contours, hierarchy = cv2.findContours(mask.copy(), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)[-2:]
        if hierarchy is None:
            return [], False
        has_holes = bool((hierarchy.reshape(-1, 4)[:, 3] >= 0).any())
        # contour points are pixel indices; +0.5 turns them into coordinates of pixel
        # centres in the continuous frame the polygons live in. Fewer than 3 points is no area.
        polygons = [c.reshape(-1).astype(np.float64) + 0.5 for c in contours]
        return [p for p in polygons if len(p) >= 6], has_holes

    def polygons_to_mask(self, polygons: List[np.ndarray]) -> np.ndarray:
        if len(polygons) == 0:
            return np.zeros((self.height, self.width), dtype=np.uint8)
        rle = mask_util.merge(mask_util.frPyObjects([list(map(float, p)) for p in polygons], self.height, self.width))
        return mask_util.decode(rle)[:, :]

    def area(self) -> int:
        return int(self.mask.sum())

    def bbox(self) -> np.ndarray:
        """The XYXY box around the polygons."""
        if len(self.polygons) == 0:
            return np.zeros(4, dtype=np.float64)
        rle = mask_util.merge(mask_util.frPyObjects([list(map(float, p)) for p in self.polygons], self.height, self.width))
        x, y, w, h = mask_util.toBbox(rle)
        return np.array([x, y, x + w, y + h], dtype=np.float64)


class _PanopticPrediction:
    """Splits a panoptic segmentation into per-segment masks, largest first."""

    def __init__(self, panoptic_seg: torch.Tensor, segments_info: Optional[List[dict]], metadata: Any = None):
        panoptic_seg = torch.as_tensor(panoptic_seg).cpu()
        if segments_info is None:
            segments_info = self._segments_from_label_divisor(panoptic_seg, metadata)
        self._seg = panoptic_seg
        self._sinfo = {int(s["id"]): s for s in segments_info}
        ids, areas = torch.unique(panoptic_seg, sorted=True, return_counts=True)
        order = torch.sort(-areas, stable=True).indices
        self._seg_ids = ids[order].tolist()
        self._seg_areas = areas[order].tolist()
        for sid, area in zip(self._seg_ids, self._seg_areas):
            if sid in self._sinfo:
                self._sinfo[sid]["area"] = float(area)

    @staticmethod
    def _segments_from_label_divisor(panoptic_seg: torch.Tensor, metadata: Any) -> List[dict]:
        # Without segments_info, a segment id is category * label_divisor + instance.
        divisor = _meta(metadata, "label_divisor")
        if divisor is None:
            raise ValueError("draw_panoptic_seg: segments_info=None needs metadata.label_divisor")
        things = set(_meta(metadata, "thing_dataset_id_to_contiguous_id", {}).values())
        segments = []
        for sid in torch.unique(panoptic_seg).tolist():
            if sid < 0:  # void
                continue
            category = sid // divisor
            segments.append({"id": int(sid), "category_id": int(category), "isthing": category in things})
        return segments

    def non_empty_mask(self) -> np.ndarray:
        """HxW bool mask of the pixels that belong to some segment (not void)."""
        empty = [sid for sid in self._seg_ids if sid not in self._sinfo]
        if not empty:
            return np.ones(tuple(self._seg.shape), dtype=bool)
        keep = torch.ones(self._seg.shape, dtype=torch.bool)
        for sid in empty:
            keep &= self._seg != sid
        return keep.numpy()

    def _masks(self, things: bool) -> Iterator[Tuple[np.ndarray, dict]]:
        for sid in self._seg_ids:
            sinfo = self._sinfo.get(sid)
            if sinfo is None or bool(sinfo["isthing"]) != things:
                continue
            mask = (self._seg == sid).numpy()
            if mask.any():
                yield mask, sinfo

    def semantic_masks(self) -> Iterator[Tuple[np.ndarray, dict]]:
        return self._masks(things=False)

    def instance_masks(self) -> Iterator[Tuple[np.ndarray, dict]]:
        return self._masks(things=True)


def _create_text_labels(classes: Optional[Sequence[int]], scores: Optional[Sequence[float]],
                        class_names: Optional[Sequence[str]], is_crowd: Optional[Sequence[int]] = None) -> Optional[List[str]]:
    """Labels like "person 97%"; None when there are neither classes nor scores."""
    labels = None
    if classes is not None:
        if class_names is not None and len(class_names) > 0:
            labels = [class_names[i] for i in classes]
        else:
            labels = [str(i) for i in classes]
    if scores is not None:
        if labels is None:
            labels = ["{:.0f}%".format(s * 100) for s in scores]
        else:
            labels = ["{} {:.0f}%".format(label, s * 100) for label, s in zip(labels, scores)]
    if labels is not None and is_crowd is not None:
        labels = [label + ("|crowd" if crowd else "") for label, crowd in zip(labels, is_crowd)]
    return labels


class VisImage:
    """An image with a matplotlib canvas on top of it, rendered off-screen (Agg)."""

    def __init__(self, img: np.ndarray, scale: float = 1.0):
        """
        Args:
            img (ndarray): HxWx3 RGB image, values in [0, 255].
            scale (float): size of the output relative to the image.
        """
        self.img = img
        self.scale = scale
        self.width, self.height = img.shape[1], img.shape[0]
        self._setup_figure(img)

    def _setup_figure(self, img: np.ndarray) -> None:
        fig = mplfigure.Figure(frameon=False)
        self.dpi = fig.get_dpi()
        # the small epsilon avoids a one-pixel loss from rounding the size in inches
        fig.set_size_inches((self.width * self.scale + 1e-2) / self.dpi, (self.height * self.scale + 1e-2) / self.dpi)
        self.canvas = FigureCanvasAgg(fig)
        ax = fig.add_axes([0.0, 0.0, 1.0, 1.0])
        ax.axis("off")
        self.fig, self.ax = fig, ax
        self.reset_image(img)

    def reset_image(self, img: np.ndarray) -> None:
        """Replace the background image (what is drawn on top stays)."""
        img = img.astype("uint8")
        self.ax.imshow(img, extent=(0, self.width, self.height, 0), interpolation="nearest")

    def save(self, filepath: str) -> None:
        """Write the rendered image (format from the extension, e.g. .png or .jpg)."""
        self.fig.savefig(filepath)

    def get_image(self) -> np.ndarray:
        """The rendered image: HxWx3 uint8 RGB, the input size times ``scale``."""
        buffer, (width, height) = self.canvas.print_to_buffer()
        rgba = np.frombuffer(buffer, dtype="uint8").reshape(height, width, 4)
        return rgba[:, :, :3].copy()


class Visualizer:
    """Draws on an RGB image. The ``draw_*`` methods draw a kind of data with good
    defaults; the primitives (``draw_box``, ``draw_text``, ``draw_polygon`` ...) give
    full control. Every method returns the ``VisImage`` drawn on.
    """

    def __init__(self, img_rgb: np.ndarray, metadata: Any = None, scale: float = 1.0,
                 instance_mode: ColorMode = ColorMode.IMAGE, font_size_scale: float = 1.0):
        """
        Args:
            img_rgb: HxWx3 (or HxW) image in RGB order, values in [0, 255].
            metadata: dataset metadata (class names, colours, keypoint names ...).
            scale: output size relative to the image.
            instance_mode: how instances are coloured (see ColorMode).
            font_size_scale: multiplies the default text size.
        """
        img = np.asarray(img_rgb)
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        if img.ndim != 3 or img.shape[2] not in (3, 4):
            raise ValueError(f"img_rgb: expected an HxWx3 image, got shape {img.shape}")
        self.img = img[:, :, :3].clip(0, 255).astype(np.uint8)
        self.metadata = metadata
        self.output = VisImage(self.img, scale=scale)
        self.cpu_device = torch.device("cpu")
        # text and line sizes follow the image size, with a floor for small images
        self._default_font_size = (
            max(np.sqrt(self.output.height * self.output.width) // 90, 10 // scale) * font_size_scale
        )
        self._instance_mode = instance_mode
        self.keypoint_threshold = _KEYPOINT_THRESHOLD

    # ------------------------------------------------------------ high level
    def draw_instance_predictions(self, predictions: Any, jittering: bool = True) -> VisImage:
        """Draw the output of an instance detection/segmentation model.

        Args:
            predictions (Instances): with any of pred_boxes, scores, pred_classes,
                pred_masks (or pred_masks_rle), pred_keypoints.
            jittering: in SEGMENTATION mode, vary class colours a little per instance.
        """
        boxes = predictions.pred_boxes if predictions.has("pred_boxes") else None
        scores = predictions.scores if predictions.has("scores") else None
        classes = predictions.pred_classes.tolist() if predictions.has("pred_classes") else None
        labels = _create_text_labels(classes, scores, _meta(self.metadata, "thing_classes"))
        keypoints = predictions.pred_keypoints if predictions.has("pred_keypoints") else None
        h, w = self.output.height, self.output.width
        masks = None
        if predictions.has("pred_masks"):
            masks = [GenericMask(m, h, w) for m in np.asarray(predictions.pred_masks.cpu() if isinstance(
                predictions.pred_masks, torch.Tensor) else predictions.pred_masks)]
        elif predictions.has("pred_masks_rle"):
            masks = [GenericMask(rle, h, w) for rle in predictions.pred_masks_rle]

        colors, alpha = None, 0.5
        thing_colors = _meta(self.metadata, "thing_colors")
        if self._instance_mode == ColorMode.SEGMENTATION and thing_colors and classes is not None:
            colors = [self._class_color(thing_colors[c], jittering) for c in classes]
            alpha = 0.8
        if self._instance_mode == ColorMode.IMAGE_BW:
            foreground = np.any([m.mask > 0 for m in masks], axis=0) if masks else None
            self.output.reset_image(self._create_grayscale_image(foreground))
            alpha = 0.3
        self.overlay_instances(masks=masks, boxes=boxes, labels=labels, keypoints=keypoints,
                               assigned_colors=colors, alpha=alpha)
        return self.output

    def draw_sem_seg(self, sem_seg: Any, area_threshold: Optional[int] = None, alpha: float = 0.8) -> VisImage:
        """Draw a semantic segmentation: one coloured region per class, labelled with
        ``stuff_classes`` (classes beyond that list are not drawn).

        Args:
            sem_seg: HxW int tensor or array of class indices.
            area_threshold: polygons smaller than this are not drawn.
        """
        if isinstance(sem_seg, torch.Tensor):
            sem_seg = sem_seg.cpu().numpy()
        sem_seg = np.asarray(sem_seg)
        if sem_seg.shape != (self.output.height, self.output.width):
            raise ValueError(f"sem_seg: expected shape {(self.output.height, self.output.width)}, got {sem_seg.shape}")
        labels, areas = np.unique(sem_seg, return_counts=True)
        names = _meta(self.metadata, "stuff_classes")
        colors = _meta(self.metadata, "stuff_colors")
        for label in labels[np.argsort(-areas, kind="stable")]:
            if label < 0 or (names is not None and label >= len(names)):
                continue
            color = [c / 255 for c in colors[label]] if colors is not None and label < len(colors) else None
            text = names[label] if names is not None else str(label)
            self.draw_binary_mask((sem_seg == label).astype(np.uint8), color=color, edge_color=_OFF_WHITE,
                                  text=text, alpha=alpha, area_threshold=area_threshold)
        return self.output

    def draw_panoptic_seg(self, panoptic_seg: Any, segments_info: Optional[List[dict]],
                          area_threshold: Optional[int] = None, alpha: float = 0.7) -> VisImage:
        """Draw a panoptic segmentation: stuff segments like ``draw_sem_seg``, thing
        segments like instances.

        Args:
            panoptic_seg: HxW int tensor of segment ids.
            segments_info: dicts with "id", "category_id", "isthing" (and optionally
                "score", "iscrowd"); None to decode ids with ``metadata.label_divisor``.
        """
        things = self._draw_panoptic_stuff(_PanopticPrediction(panoptic_seg, segments_info, self.metadata),
                                          area_threshold, alpha)
        if not things:
            return self.output
        masks, sinfos = zip(*things)
        categories = [s["category_id"] for s in sinfos]
        scores = [s["score"] for s in sinfos] if all("score" in s for s in sinfos) else None
        labels = _create_text_labels(categories, scores, _meta(self.metadata, "thing_classes"),
                                     [s.get("iscrowd", 0) for s in sinfos])
        thing_colors = _meta(self.metadata, "thing_colors")
        colors = [self._class_color(thing_colors[c], True) for c in categories] if thing_colors else None
        self.overlay_instances(masks=masks, labels=labels, assigned_colors=colors, alpha=alpha)
        return self.output

    def _draw_panoptic_stuff(self, pred: _PanopticPrediction, area_threshold: Optional[int],
                             alpha: float) -> List[Tuple[np.ndarray, dict]]:
        """Grey out void (in IMAGE_BW mode) and draw the stuff segments; returns the
        (mask, segment info) pairs of the things, largest first."""
        if self._instance_mode == ColorMode.IMAGE_BW:
            self.output.reset_image(self._create_grayscale_image(pred.non_empty_mask()))
        stuff_names = _meta(self.metadata, "stuff_classes")
        stuff_colors = _meta(self.metadata, "stuff_colors")
        for mask, sinfo in pred.semantic_masks():
            category = sinfo["category_id"]
            color = [c / 255 for c in stuff_colors[category]] if stuff_colors is not None else None
            text = stuff_names[category] if stuff_names is not None else str(category)
            self.draw_binary_mask(mask, color=color, edge_color=_OFF_WHITE, text=text, alpha=alpha,
                                  area_threshold=area_threshold)
        return list(pred.instance_masks())

    def draw_dataset_dict(self, dic: dict) -> VisImage:
        """Draw the annotations of one dataset dict (Detectron2's dataset format):
        instance boxes, masks and keypoints, then ``sem_seg`` / ``pan_seg`` if present
        (given as arrays or as ``*_file_name`` paths)."""
        annos = dic.get("annotations")
        if annos:
            self._draw_annotations(annos)
        sem_seg = dic.get("sem_seg")
        if sem_seg is None and "sem_seg_file_name" in dic:
            with PathManager.open(dic["sem_seg_file_name"], "rb") as f:
                sem_seg = np.asarray(Image.open(f), dtype="uint8")
        if sem_seg is not None:
            self.draw_sem_seg(sem_seg, area_threshold=0, alpha=0.5)
        pan_seg = dic.get("pan_seg")
        if pan_seg is None and "pan_seg_file_name" in dic:
            with PathManager.open(dic["pan_seg_file_name"], "rb") as f:
                pan_seg = _rgb_to_id(np.asarray(Image.open(f).convert("RGB")))
        if pan_seg is not None:
            self.draw_panoptic_seg(torch.as_tensor(np.asarray(pan_seg)), dic["segments_info"], area_threshold=0, alpha=0.5)
        return self.output

    def _draw_annotations(self, annos: List[dict]) -> None:
        masks = [a["segmentation"] for a in annos] if "segmentation" in annos[0] else None
        keypoints = None
        if "keypoints" in annos[0]:
            keypoints = np.array([a["keypoints"] for a in annos], dtype=np.float64).reshape(len(annos), -1, 3)
        boxes = None
        if "bbox" in annos[0]:
            boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) if len(a["bbox"]) == 4 else a["bbox"]
                     for a in annos]
        categories = [a["category_id"] for a in annos]
        colors = None
        thing_colors = _meta(self.metadata, "thing_colors")
        if self._instance_mode == ColorMode.SEGMENTATION and thing_colors:
            colors = [self._class_color(thing_colors[c], True) for c in categories]
        labels = _create_text_labels(categories, None, _meta(self.metadata, "thing_classes"),
                                     [a.get("iscrowd", 0) for a in annos])
        self.overlay_instances(labels=labels, boxes=boxes, masks=masks, keypoints=keypoints, assigned_colors=colors)

    def overlay_instances(self, *, boxes: Any = None, labels: Optional[List[str]] = None, masks: Any = None,
                          keypoints: Any = None, assigned_colors: Optional[List[Any]] = None,
                          alpha: float = 0.5) -> VisImage:
        """Draw instances given as parallel lists; larger instances are drawn first so
        that small ones stay visible.

        Args:
            boxes: Boxes, RotatedBoxes, or an Nx4 (XYXY) / Nx5 (rotated) array.
            labels: N strings.
            masks: BitMasks, PolygonMasks, an NxHxW array/tensor, or a list of
                GenericMask / binary masks / polygon lists / RLE dicts.
            keypoints: Keypoints or an NxKx3 array of (x, y, score).
            assigned_colors: N matplotlib colours; random palette colours if None.
        """
        boxes = self._convert_boxes(boxes) if boxes is not None else None
        masks = self._convert_masks(masks) if masks is not None else None
        keypoints = self._convert_keypoints(keypoints) if keypoints is not None else None
        counts = [len(x) for x in (boxes, masks, keypoints) if x is not None]
        if labels is not None:
            counts.append(len(labels))
        if assigned_colors is not None:
            counts.append(len(assigned_colors))
        if len(set(counts)) > 1:
            raise ValueError(f"overlay_instances: boxes, masks, keypoints, labels and colours differ in length: {counts}")
        n = counts[0] if counts else 0
        if n == 0:
            return self.output
        if boxes is not None and boxes.shape[1] == 5:
            return self.overlay_rotated_instances(boxes=boxes, labels=labels, assigned_colors=assigned_colors)
        if assigned_colors is None:
            assigned_colors = [random_color(rgb=True, maximum=1) for _ in range(n)]

        if boxes is not None:
            areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
        elif masks is not None:
            areas = np.asarray([m.area() for m in masks])
        else:
            areas = None
        if areas is not None:
            order = np.argsort(-areas, kind="stable").tolist()
            boxes = boxes[order] if boxes is not None else None
            labels = [labels[k] for k in order] if labels is not None else None
            masks = [masks[k] for k in order] if masks is not None else None
            assigned_colors = [assigned_colors[k] for k in order]
            keypoints = keypoints[order] if keypoints is not None else None

        for i in range(n):
            color = assigned_colors[i]
            if boxes is not None:
                self.draw_box(boxes[i], edge_color=color)
            if masks is not None:
                if masks[i].has_holes:
                    self.draw_binary_mask(masks[i].mask, color=color, alpha=alpha, area_threshold=0)
                else:
                    for segment in masks[i].polygons:
                        self.draw_polygon(segment.reshape(-1, 2), color, alpha=alpha)
            if labels is not None:
                self._draw_instance_label(labels[i], color, boxes[i] if boxes is not None else None,
                                          masks[i] if masks is not None else None)
        if keypoints is not None:
            for kps in keypoints:
                self.draw_and_connect_keypoints(kps)
        return self.output

    def _draw_instance_label(self, label: str, color: Any, box: Optional[np.ndarray], mask: Optional[GenericMask]) -> None:
        if box is not None:
            x0, y0, x1, y1 = box
            position, align = (x0, y0), "left"
        elif mask is not None:
            if len(mask.polygons) == 0 and not mask.mask.any():
                return
            x0, y0, x1, y1 = mask.bbox()
            # the median pixel of the mask lies inside it, unlike the box centre
            position, align = np.median(mask.mask.nonzero(), axis=1)[::-1], "center"
        else:
            return
        scale = self.output.scale
        if (y1 - y0) * (x1 - x0) < _SMALL_OBJECT_AREA_THRESH * scale or y1 - y0 < 40 * scale:
            # small objects: put the label outside, below the box unless at the bottom edge
            position = (x1, y0) if y1 >= self.output.height - 5 else (x0, y1)
        height_ratio = (y1 - y0) / np.sqrt(self.output.height * self.output.width)
        font_size = np.clip((height_ratio - 0.02) / 0.08 + 1, 1.2, 2) * 0.5 * self._default_font_size
        self.draw_text(label, position, color=self._change_color_brightness(color, brightness_factor=0.7),
                       horizontal_alignment=align, font_size=font_size)

    def overlay_rotated_instances(self, boxes: Any = None, labels: Optional[List[str]] = None,
                                  assigned_colors: Optional[List[Any]] = None) -> VisImage:
        """Draw rotated boxes (Nx5: x_ctr, y_ctr, w, h, angle in degrees CCW) with labels."""
        if boxes is None:
            return self.output
        boxes = self._convert_boxes(boxes)
        n = len(boxes)
        if assigned_colors is None:
            assigned_colors = [random_color(rgb=True, maximum=1) for _ in range(n)]
        if n == 0:
            return self.output
        order = np.argsort(-(boxes[:, 2] * boxes[:, 3]), kind="stable").tolist()
        for k in order:
            self.draw_rotated_box_with_label(boxes[k], edge_color=assigned_colors[k],
                                             label=labels[k] if labels is not None else None)
        return self.output

    def draw_and_connect_keypoints(self, keypoints: Any) -> VisImage:
        """Draw one instance's keypoints (Kx3: x, y, score) above the threshold, and the
        connections of ``metadata.keypoint_connection_rules`` between visible ones."""
        visible, circles = {}, []
        names = _meta(self.metadata, "keypoint_names")
        for idx, (x, y, prob) in enumerate(np.asarray(keypoints, dtype=np.float64)):
            if prob > self.keypoint_threshold:
                circles.append((x, y))
                if names:
                    visible[names[idx]] = (x, y)
        segments, colors = [], []
        for name0, name1, color in _meta(self.metadata, "keypoint_connection_rules", None) or []:
            if name0 in visible and name1 in visible:
                segments.append([visible[name0], visible[name1]])
                colors.append(tuple(c / 255.0 for c in color))
        # COCO skeletons: nose to mid-shoulder and mid-shoulder to mid-hip
        mid_shoulder = self._midpoint(visible, "left_shoulder", "right_shoulder")
        if mid_shoulder is not None:
            mid_hip = self._midpoint(visible, "left_hip", "right_hip")
            for end in (visible.get("nose"), mid_hip):
                if end is not None:
                    segments.append([end, mid_shoulder])
                    colors.append(_RED)
        # one collection each instead of an artist per circle / line: rendering cost is
        # mostly per artist (same look as draw_circle / draw_line with their defaults)
        if circles:
            self.output.ax.add_collection(mpl.collections.PatchCollection(
                [mpl.patches.Circle(c, radius=3) for c in circles], facecolor=_RED, edgecolor=_RED, zorder=1))
        if segments:
            linewidth = max(self._default_font_size / 3, 1) * self.output.scale
            self.output.ax.add_collection(mpl.collections.LineCollection(
                segments, colors=colors, linewidths=linewidth, zorder=2))
        return self.output

    @staticmethod
    def _midpoint(points: dict, a: str, b: str) -> Optional[Tuple[float, float]]:
        if a not in points or b not in points:
            return None
        return ((points[a][0] + points[b][0]) / 2, (points[a][1] + points[b][1]) / 2)

    # ------------------------------------------------------------ primitives
    def draw_text(self, text: str, position: Tuple[float, float], *, font_size: Optional[float] = None,
                  color: Any = "g", horizontal_alignment: str = "center", rotation: float = 0) -> VisImage:
        """Draw ``text`` at ``position`` (x, y) on a dark box; the colour is brightened
        enough to stay readable on it."""
        if font_size is None:
            font_size = self._default_font_size
        color = np.maximum(list(mplc.to_rgb(color)), 0.2)
        color[np.argmax(color)] = max(0.8, np.max(color))
        x, y = position
        self.output.ax.text(
            x, y, text, size=font_size * self.output.scale, family="sans-serif",
            bbox={"facecolor": "black", "alpha": 0.8, "pad": 0.7, "edgecolor": "none"},
            verticalalignment="top", horizontalalignment=horizontal_alignment, color=color, zorder=10,
            rotation=rotation,
        )
        return self.output

    def draw_box(self, box_coord: Sequence[float], alpha: float = 0.5, edge_color: Any = "g",
                 line_style: str = "-") -> VisImage:
        """Draw the outline of an XYXY box."""
        x0, y0, x1, y1 = box_coord
        linewidth = max(self._default_font_size / 4, 1)
        self.output.ax.add_patch(mpl.patches.Rectangle(
            (x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=edge_color,
            linewidth=linewidth * self.output.scale, alpha=alpha, linestyle=line_style,
        ))
        return self.output

    def draw_rotated_box_with_label(self, rotated_box: Sequence[float], alpha: float = 0.5, edge_color: Any = "g",
                                    line_style: str = "-", label: Optional[str] = None) -> VisImage:
        """Draw a rotated box (x_ctr, y_ctr, w, h, angle in degrees, counter-clockwise
        on screen) with its top edge dashed so the orientation shows, and a label at
        its top-left corner."""
        cx, cy, w, h, angle = (float(v) for v in rotated_box)
        small = w * h < _SMALL_OBJECT_AREA_THRESH * self.output.scale
        linewidth = self._default_font_size / (6 if small else 3)
        corners = _rotated_box_corners(cx, cy, w, h, angle)
        for k in range(4):
            (xa, ya), (xb, yb) = corners[k], corners[(k + 1) % 4]
            self.draw_line([xa, xb], [ya, yb], color=edge_color, linestyle="--" if k == 1 else line_style,
                           linewidth=linewidth)
        if label is not None:
            height_ratio = h / np.sqrt(self.output.height * self.output.width)
            font_size = np.clip((height_ratio - 0.02) / 0.08 + 1, 1.2, 2) * 0.5 * self._default_font_size
            self.draw_text(label, corners[1], color=self._change_color_brightness(edge_color, brightness_factor=0.7),
                           font_size=font_size, rotation=angle)
        return self.output

    def draw_circle(self, circle_coord: Tuple[float, float], color: Any, radius: float = 3) -> VisImage:
        """Draw a filled circle."""
        self.output.ax.add_patch(mpl.patches.Circle(circle_coord, radius=radius, fill=True, color=color))
        return self.output

    def draw_line(self, x_data: Sequence[float], y_data: Sequence[float], color: Any, linestyle: str = "-",
                  linewidth: Optional[float] = None) -> VisImage:
        """Draw a polyline through the points (x_data[i], y_data[i])."""
        if linewidth is None:
            linewidth = self._default_font_size / 3
        linewidth = max(linewidth, 1)
        self.output.ax.add_line(mpl.lines.Line2D(x_data, y_data, linewidth=linewidth * self.output.scale,
                                                 color=color, linestyle=linestyle))
        return self.output

    def draw_binary_mask(self, binary_mask: np.ndarray, color: Any = None, *, edge_color: Any = None,
                         text: Optional[str] = None, alpha: float = 0.5, area_threshold: Optional[float] = 10) -> VisImage:
        """Draw a binary HxW mask: as polygons (with edges) when it has no holes, else
        as a translucent layer. Polygons smaller than ``area_threshold`` are skipped;
        ``text`` is written on the largest connected component."""
        if color is None:
            color = random_color(rgb=True, maximum=1)
        color = mplc.to_rgb(color)
        binary_mask = np.asarray(binary_mask).astype(np.uint8)
        mask = GenericMask(binary_mask, self.output.height, self.output.width)
        drawn = False
        if not mask.has_holes:
            for segment in mask.polygons:
                area = mask_util.area(mask_util.frPyObjects([list(map(float, segment))], self.output.height,
                                                            self.output.width))[0]
                if area < (area_threshold or 0):
                    continue
                drawn = True
                self.draw_polygon(segment.reshape(-1, 2), color=color, edge_color=edge_color, alpha=alpha)
        else:
            self._draw_rgba_layer(color, (mask.mask == 1).astype(np.float32) * alpha)
            drawn = True
        if text is not None and drawn:
            self._draw_text_in_mask(binary_mask, text, self._change_color_brightness(color, brightness_factor=0.7))
        return self.output

    def draw_soft_mask(self, soft_mask: np.ndarray, color: Any = None, *, text: Optional[str] = None,
                       alpha: float = 0.5) -> VisImage:
        """Draw an HxW mask of probabilities in [0, 1] as a layer whose opacity follows them."""
        if color is None:
            color = random_color(rgb=True, maximum=1)
        color = mplc.to_rgb(color)
        soft_mask = np.asarray(soft_mask, dtype=np.float32)
        self._draw_rgba_layer(color, soft_mask * alpha)
        if text is not None:
            self._draw_text_in_mask((soft_mask > 0.5).astype(np.uint8), text,
                                    self._change_color_brightness(color, brightness_factor=0.7))
        return self.output

    def _draw_rgba_layer(self, color: Tuple[float, float, float], opacity: np.ndarray) -> None:
        rgba = np.zeros(opacity.shape + (4,), dtype=np.float32)
        rgba[:, :, :3] = color
        rgba[:, :, 3] = opacity
        self.output.ax.imshow(rgba, extent=(0, self.output.width, self.output.height, 0))

    def draw_polygon(self, segment: np.ndarray, color: Any, edge_color: Any = None, alpha: float = 0.5) -> VisImage:
        """Draw a filled polygon (Nx2 points) with an opaque edge; by default the edge is
        the fill colour, darkened when the fill is nearly opaque."""
        if edge_color is None:
            edge_color = self._change_color_brightness(color, brightness_factor=-0.7) if alpha > 0.8 else color
        edge_color = mplc.to_rgb(edge_color) + (1,)
        self.output.ax.add_patch(mpl.patches.Polygon(
            segment, fill=True, facecolor=mplc.to_rgb(color) + (alpha,), edgecolor=edge_color,
            linewidth=max(self._default_font_size // 15 * self.output.scale, 1),
        ))
        return self.output

    # ------------------------------------------------------------ helpers
    def _class_color(self, color255: Sequence[float], jitter: bool) -> Tuple[float, float, float]:
        color = tuple(c / 255 for c in color255)
        return self._jitter(color) if jitter else color

    def _jitter(self, color: Any) -> Tuple[float, float, float]:
        """The colour moved by a random vector of length 0.5: instances of one class
        stay alike but tell apart."""
        color = mplc.to_rgb(color)
        vec = np.random.rand(3)
        vec = vec / np.linalg.norm(vec) * 0.5
        return tuple(np.clip(vec + color, 0, 1))

    def _create_grayscale_image(self, mask: Optional[np.ndarray] = None) -> np.ndarray:
        """The image in grey, except the pixels of ``mask`` which keep their colour."""
        grey = self.img.astype("f4").mean(axis=2)
        out = np.stack([grey] * 3, axis=2)
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            out[mask] = self.img[mask]
        return out

    def _change_color_brightness(self, color: Any, brightness_factor: float) -> Tuple[float, float, float]:
        """Lighten (factor > 0) or darken (factor < 0) a colour by scaling its HLS lightness."""
        assert -1.0 <= brightness_factor <= 1.0
        hue, lightness, saturation = colorsys.rgb_to_hls(*mplc.to_rgb(color))
        lightness = float(np.clip(lightness * (1 + brightness_factor), 0.0, 1.0))
        return colorsys.hls_to_rgb(hue, lightness, saturation)

    def _convert_boxes(self, boxes: Any) -> np.ndarray:
        if isinstance(boxes, (Boxes, RotatedBoxes)):
            return boxes.tensor.detach().cpu().numpy()
        if isinstance(boxes, torch.Tensor):
            return boxes.detach().cpu().numpy()
        return np.asarray(boxes, dtype=np.float64).reshape(len(boxes), -1) if len(boxes) else np.zeros((0, 4))

    def _convert_masks(self, masks: Any) -> List[GenericMask]:
        if isinstance(masks, PolygonMasks):
            masks = masks.polygons
        elif isinstance(masks, BitMasks):
            masks = masks.tensor
        if isinstance(masks, torch.Tensor):
            masks = masks.detach().cpu().numpy()
        h, w = self.output.height, self.output.width
        return [m if isinstance(m, GenericMask) else GenericMask(m, h, w) for m in masks]

    def _convert_keypoints(self, keypoints: Any) -> np.ndarray:
        if isinstance(keypoints, Keypoints):
            keypoints = keypoints.tensor
        if isinstance(keypoints, torch.Tensor):
            keypoints = keypoints.detach().cpu().numpy()
        return np.asarray(keypoints)

    def _draw_text_in_mask(self, binary_mask: np.ndarray, text: str, color: Any) -> None:
        """Write ``text`` on the largest connected component, and on every very large one."""
        num, labels, stats, _ = cv2.connectedComponentsWithStats(binary_mask, 8)
        if num <= 1:
            return
        largest = int(np.argmax(stats[1:, -1])) + 1
        for cid in range(1, num):
            if cid == largest or stats[cid, -1] > _LARGE_MASK_AREA_THRESH:
                center = np.median((labels == cid).nonzero(), axis=1)[::-1]
                self.draw_text(text, center, color=color)

    def get_output(self) -> VisImage:
        """The VisImage drawn on so far."""
        return self.output


def _rotated_box_corners(cx: float, cy: float, w: float, h: float, angle: float) -> List[Tuple[float, float]]:
    """Corners of a rotated box in image coordinates (y down): bottom-left, top-left,
    top-right, bottom-right of the unrotated box, turned counter-clockwise on screen by
    ``angle`` degrees about the centre."""
    theta = math.radians(angle)
    c, s = math.cos(theta), math.sin(theta)
    local = [(-w / 2, h / 2), (-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2)]
    # with y pointing down, a counter-clockwise turn on screen is x' = c x + s y, y' = -s x + c y
    return [(cx + c * x + s * y, cy - s * x + c * y) for x, y in local]


def _rgb_to_id(color: np.ndarray) -> np.ndarray:
    """Segment ids of a COCO panoptic PNG: R + 256 G + 256^2 B."""
    color = color.astype(np.int64)
    return color[..., 0] + 256 * color[..., 1] + 256 * 256 * color[..., 2]
