"""The standard augmentations: flips, resizes, crops, rotations, colour jitter."""
import sys
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
from fvcore.transforms.transform import (
    BlendTransform,
    CropTransform,
    HFlipTransform,
    NoOpTransform,
    PadTransform,
    Transform,
    TransformList,
    VFlipTransform,
)
from PIL import Image

from detectron2.layers._errors import ValueAssertionError
from detectron2.structures import Boxes, pairwise_iou

from .augmentation import Augmentation, _transform_to_aug
from .transform import ExtentTransform, ResizeTransform, RotationTransform

__all__ = [
    "FixedSizeCrop",
    "RandomApply",
    "RandomBrightness",
    "RandomContrast",
    "RandomCrop",
    "RandomExtent",
    "RandomFlip",
    "RandomSaturation",
    "RandomLighting",
    "RandomRotation",
    "Resize",
    "ResizeScale",
    "ResizeShortestEdge",
    "RandomCrop_CategoryAreaConstraint",
    "RandomResize",
    "MinIoURandomCrop",
]


class RandomApply(Augmentation):
    """Applies a transform or augmentation with probability `prob`."""

    def __init__(self, tfm_or_aug: Union[Transform, Augmentation], prob: float = 0.5):
        super().__init__()
        self.aug = _transform_to_aug(tfm_or_aug)
        if not 0.0 <= prob <= 1.0:
            raise ValueAssertionError(f"RandomApply: prob must be in [0, 1], got {prob}")
        self.prob = prob

    def get_transform(self, *args) -> Transform:
        if self._rand_range() < self.prob:
            return self.aug.get_transform(*args)
        return NoOpTransform()

    def __call__(self, aug_input) -> Transform:
        if self._rand_range() < self.prob:
            return self.aug(aug_input)
        return NoOpTransform()


class RandomFlip(Augmentation):
    """Flips the image horizontally or vertically with probability `prob`."""

    def __init__(self, prob: float = 0.5, *, horizontal: bool = True, vertical: bool = False):
        super().__init__()
        if horizontal and vertical:
            raise ValueError("RandomFlip: cannot flip both horizontally and vertically; use two RandomFlips")
        if not horizontal and not vertical:
            raise ValueError("RandomFlip: one of horizontal or vertical must be True")
        self._init(locals())

    def get_transform(self, image: np.ndarray) -> Transform:
        h, w = image.shape[:2]
        if self._rand_range() < self.prob:
            return HFlipTransform(w) if self.horizontal else VFlipTransform(h)
        return NoOpTransform()


class Resize(Augmentation):
    """Resizes the image to a fixed (h, w), or a square of side `shape`."""

    def __init__(self, shape: Union[int, Tuple[int, int]], interp=Image.BILINEAR):
        super().__init__()
        if isinstance(shape, int):
            shape = (shape, shape)
        shape = tuple(shape)
        self._init(locals())

    def get_transform(self, image: np.ndarray) -> Transform:
        return ResizeTransform(image.shape[0], image.shape[1], self.shape[0], self.shape[1], self.interp)


class ResizeShortestEdge(Augmentation):
    """Resizes so the shorter side is a sampled length, keeping the aspect ratio, unless
    the longer side would then exceed `max_size` (then the longer side is max_size).

    sample_style "range" draws the length uniformly from [min, max] of
    `short_edge_length`; "choice" picks one of its values.
    """

    @torch.jit.unused
    def __init__(
        self,
        short_edge_length: Union[int, Sequence[int]],
        max_size: int = sys.maxsize,
        sample_style: str = "range",
        interp=Image.BILINEAR,
    ):
        super().__init__()
        if sample_style not in ("range", "choice"):
            raise ValueAssertionError(f"ResizeShortestEdge: sample_style must be 'range' or 'choice', got {sample_style!r}")
        self.is_range = sample_style == "range"
        if isinstance(short_edge_length, int):
            short_edge_length = (short_edge_length, short_edge_length)
        if self.is_range and len(short_edge_length) != 2:
            raise ValueAssertionError(
                "ResizeShortestEdge: with sample_style='range', short_edge_length must be (min, max), "
                f"got {short_edge_length}"
            )
        self._init(locals())

    @torch.jit.unused
    def get_transform(self, image: np.ndarray) -> Transform:
        h, w = image.shape[:2]
        if self.is_range:
            size = np.random.randint(self.short_edge_length[0], self.short_edge_length[1] + 1)
        else:
            size = np.random.choice(self.short_edge_length)
        if size == 0:
            return NoOpTransform()
        newh, neww = ResizeShortestEdge.get_output_shape(h, w, size, self.max_size)
        return ResizeTransform(h, w, newh, neww, self.interp)

    @staticmethod
    def get_output_shape(oldh: int, oldw: int, short_edge_length: int, max_size: int) -> Tuple[int, int]:
        """The (h, w) after resizing (oldh, oldw) to the given short edge and max size;
        the sides are rounded half up."""
        scale = short_edge_length * 1.0 / min(oldh, oldw)
        if oldh < oldw:
            newh, neww = short_edge_length * 1.0, scale * oldw
        else:
            newh, neww = scale * oldh, short_edge_length * 1.0
        longest = max(newh, neww)
        if longest > max_size:
            shrink = max_size * 1.0 / longest
            newh, neww = newh * shrink, neww * shrink
        return int(newh + 0.5), int(neww + 0.5)


class ResizeScale(Augmentation):
    """Large-scale jitter: scales the target size (target_height, target_width) by a factor
    drawn from [min_scale, max_scale], then resizes the image, keeping its aspect ratio,
    to the largest size that fits in the scaled target."""

    def __init__(
        self,
        min_scale: float,
        max_scale: float,
        target_height: int,
        target_width: int,
        interp: int = Image.BILINEAR,
    ):
        super().__init__()
        self._init(locals())

    def _get_resize(self, image: np.ndarray, scale: float) -> Transform:
        in_h, in_w = image.shape[:2]
        ratio = min(self.target_height * scale / in_h, self.target_width * scale / in_w)
        out_h, out_w = np.round(np.multiply((in_h, in_w), ratio)).astype(int)
        return ResizeTransform(in_h, in_w, int(out_h), int(out_w), self.interp)

    def get_transform(self, image: np.ndarray) -> Transform:
        return self._get_resize(image, np.random.uniform(self.min_scale, self.max_scale))


class RandomRotation(Augmentation):
    """Rotates by an angle in degrees (counter-clockwise) drawn from `angle`: a range
    [min, max] ("range") or a list of values ("choice"). `center`, relative to the image
    size, is likewise a range [[xmin, ymin], [xmax, ymax]] or a list of (x, y)."""

    def __init__(self, angle, expand: bool = True, center=None, sample_style: str = "range", interp=None):
        super().__init__()
        if sample_style not in ("range", "choice"):
            raise ValueAssertionError(f"RandomRotation: sample_style must be 'range' or 'choice', got {sample_style!r}")
        self.is_range = sample_style == "range"
        if isinstance(angle, (float, int)):
            angle = (angle, angle)
        if center is not None and isinstance(center[0], (float, int)):
            center = (center, center)
        self._init(locals())

    def get_transform(self, image: np.ndarray) -> Transform:
        h, w = image.shape[:2]
        center = None
        if self.is_range:
            angle = np.random.uniform(self.angle[0], self.angle[1])
            if self.center is not None:
                lo, hi = self.center
                center = (np.random.uniform(lo[0], hi[0]), np.random.uniform(lo[1], hi[1]))
        else:
            angle = self.angle[np.random.randint(len(self.angle))]
            if self.center is not None:
                center = self.center[np.random.randint(len(self.center))]
        if center is not None:
            center = (w * center[0], h * center[1])  # relative -> absolute
        if angle % 360 == 0:
            return NoOpTransform()
        return RotationTransform(h, w, angle, expand=self.expand, center=center, interp=self.interp)


class FixedSizeCrop(Augmentation):
    """Crops a random window of `crop_size` = (h, w) where the image is larger, and with
    `pad`, pads (bottom/right) where it is smaller, so the output is exactly crop_size.
    Pixels are padded with `pad_value`, segmentations with `seg_pad_value`."""

    def __init__(
        self,
        crop_size: Tuple[int, int],
        pad: bool = True,
        pad_value: float = 128.0,
        seg_pad_value: int = 255,
    ):
        super().__init__()
        self._init(locals())

    def _get_crop(self, image: np.ndarray) -> Transform:
        in_size = np.asarray(image.shape[:2])
        out_size = np.asarray(self.crop_size)
        slack = np.maximum(in_size - out_size, 0)
        offset = np.round(slack * np.random.uniform(0.0, 1.0)).astype(int)
        crop = np.minimum(in_size, out_size)
        return CropTransform(
            int(offset[1]), int(offset[0]), int(crop[1]), int(crop[0]), int(in_size[1]), int(in_size[0])
        )

    def _get_pad(self, image: np.ndarray) -> Transform:
        in_size = np.asarray(image.shape[:2])
        out_size = np.asarray(self.crop_size)
        pad = np.maximum(out_size - in_size, 0)
        kept = np.minimum(in_size, out_size)
        return PadTransform(
            0, 0, int(pad[1]), int(pad[0]), int(kept[1]), int(kept[0]), self.pad_value, self.seg_pad_value
        )

    def get_transform(self, image: np.ndarray) -> TransformList:
        transforms = [self._get_crop(image)]
        if self.pad:
            transforms.append(self._get_pad(image))
        return TransformList(transforms)


class RandomCrop(Augmentation):
    """Crops a random window whose size follows `crop_type`:

    * "relative": (h * crop_size[0], w * crop_size[1]);
    * "relative_range": relative, with each factor drawn from [crop_size[i], 1];
    * "absolute": crop_size (clipped to the image);
    * "absolute_range": each side drawn from [crop_size[0], crop_size[1]] (clipped).
    """

    def __init__(self, crop_type: str, crop_size):
        super().__init__()
        if crop_type not in ("relative_range", "relative", "absolute", "absolute_range"):
            raise ValueAssertionError(
                "RandomCrop: crop_type must be one of relative_range, relative, absolute, absolute_range; "
                f"got {crop_type!r}"
            )
        self._init(locals())

    def get_transform(self, image: np.ndarray) -> Transform:
        h, w = image.shape[:2]
        croph, cropw = self.get_crop_size((h, w))
        if h < croph or w < cropw:
            raise ValueAssertionError(f"RandomCrop: crop size {(croph, cropw)} is larger than the image {(h, w)}")
        h0 = np.random.randint(h - croph + 1)
        w0 = np.random.randint(w - cropw + 1)
        return CropTransform(w0, h0, cropw, croph)

    def get_crop_size(self, image_size: Tuple[int, int]) -> Tuple[int, int]:
        """The (h, w) of the crop for an image of `image_size` = (h, w)."""
        h, w = image_size
        if self.crop_type == "relative":
            ch, cw = self.crop_size
            return int(h * ch + 0.5), int(w * cw + 0.5)
        if self.crop_type == "relative_range":
            lo = np.asarray(self.crop_size, dtype=np.float32)
            ch, cw = lo + np.random.rand(2) * (1 - lo)
            return int(h * ch + 0.5), int(w * cw + 0.5)
        if self.crop_type == "absolute":
            return min(self.crop_size[0], h), min(self.crop_size[1], w)
        lo, hi = self.crop_size
        if lo > hi:
            raise ValueAssertionError(f"RandomCrop: absolute_range crop_size must be (min, max), got {self.crop_size}")
        ch = np.random.randint(min(h, lo), min(h, hi) + 1)
        cw = np.random.randint(min(w, lo), min(w, hi) + 1)
        return ch, cw


class RandomCrop_CategoryAreaConstraint(Augmentation):
    """RandomCrop that retries (up to 10 times) until no single category covers more than
    `single_category_max_area` of the cropped semantic segmentation (ignoring
    `ignored_category`)."""

    def __init__(
        self,
        crop_type: str,
        crop_size,
        single_category_max_area: float = 1.0,
        ignored_category: Optional[int] = None,
    ):
        super().__init__()
        self.crop_aug = RandomCrop(crop_type, crop_size)
        self._init(locals())

    def get_transform(self, image: np.ndarray, sem_seg: np.ndarray) -> Transform:
        if self.single_category_max_area >= 1.0:
            return self.crop_aug.get_transform(image)
        h, w = sem_seg.shape
        for _ in range(10):
            ch, cw = self.crop_aug.get_crop_size((h, w))
            y0 = np.random.randint(h - ch + 1)
            x0 = np.random.randint(w - cw + 1)
            labels, counts = np.unique(sem_seg[y0 : y0 + ch, x0 : x0 + cw], return_counts=True)
            if self.ignored_category is not None:
                counts = counts[labels != self.ignored_category]
            if len(counts) > 1 and np.max(counts) < np.sum(counts) * self.single_category_max_area:
                break
        return CropTransform(x0, y0, cw, ch)


class RandomExtent(Augmentation):
    """Takes a random sub-rectangle (possibly reaching outside the image, filled with 0):
    the image rectangle scaled by a factor from `scale_range` and shifted by up to
    `shift_range` (relative to the image size, (x, y)) in each direction."""

    def __init__(self, scale_range: Tuple[float, float], shift_range: Tuple[float, float]):
        super().__init__()
        self._init(locals())

    def get_transform(self, image: np.ndarray) -> Transform:
        img_h, img_w = image.shape[:2]
        # The image rectangle centred on the origin, scaled, shifted, then put back.
        half = np.array([-0.5 * img_w, -0.5 * img_h, 0.5 * img_w, 0.5 * img_h])
        rect = half * np.random.uniform(self.scale_range[0], self.scale_range[1])
        rect[0::2] += self.shift_range[0] * img_w * (np.random.rand() - 0.5) + 0.5 * img_w
        rect[1::2] += self.shift_range[1] * img_h * (np.random.rand() - 0.5) + 0.5 * img_h
        return ExtentTransform(
            src_rect=(rect[0], rect[1], rect[2], rect[3]),
            output_size=(int(rect[3] - rect[1]), int(rect[2] - rect[0])),
        )


class RandomContrast(Augmentation):
    """Scales contrast by a factor w from [intensity_min, intensity_max]:
    out = w * img + (1 - w) * mean(img)."""

    def __init__(self, intensity_min: float, intensity_max: float):
        super().__init__()
        self._init(locals())

    def get_transform(self, image: np.ndarray) -> Transform:
        w = np.random.uniform(self.intensity_min, self.intensity_max)
        return BlendTransform(src_image=image.mean(), src_weight=1 - w, dst_weight=w)


class RandomBrightness(Augmentation):
    """Scales brightness by a factor w from [intensity_min, intensity_max]: out = w * img."""

    def __init__(self, intensity_min: float, intensity_max: float):
        super().__init__()
        self._init(locals())

    def get_transform(self, image: np.ndarray) -> Transform:
        w = np.random.uniform(self.intensity_min, self.intensity_max)
        return BlendTransform(src_image=0, src_weight=1 - w, dst_weight=w)


class RandomSaturation(Augmentation):
    """Scales saturation of an RGB image by a factor w from [intensity_min, intensity_max]:
    out = w * img + (1 - w) * grayscale(img)."""

    def __init__(self, intensity_min: float, intensity_max: float):
        super().__init__()
        self._init(locals())

    def get_transform(self, image: np.ndarray) -> Transform:
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueAssertionError(f"RandomSaturation: image must be HxWx3 RGB, got shape {image.shape}")
        w = np.random.uniform(self.intensity_min, self.intensity_max)
        gray = image.dot([0.299, 0.587, 0.114])[:, :, np.newaxis]  # ITU-R BT.601 luma
        return BlendTransform(src_image=gray, src_weight=1 - w, dst_weight=w)


class RandomLighting(Augmentation):
    """AlexNet-style PCA lighting noise: adds eigvecs @ (alpha * eigvals) to every pixel,
    alpha ~ N(0, scale), with the ImageNet RGB principal components."""

    def __init__(self, scale: float):
        super().__init__()
        self._init(locals())
        self.eigen_vecs = np.array(
            [[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]]
        )
        self.eigen_vals = np.array([0.2175, 0.0188, 0.0045])

    def get_transform(self, image: np.ndarray) -> Transform:
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueAssertionError(f"RandomLighting: image must be HxWx3 RGB, got shape {image.shape}")
        alpha = np.random.normal(scale=self.scale, size=3)
        return BlendTransform(src_image=self.eigen_vecs.dot(alpha * self.eigen_vals), src_weight=1.0, dst_weight=1.0)


class RandomResize(Augmentation):
    """Resizes to one (h, w) picked at random from `shape_list`."""

    def __init__(self, shape_list: Sequence[Tuple[int, int]], interp=Image.BILINEAR):
        super().__init__()
        self.shape_list = shape_list
        self.interp = interp

    def get_transform(self, image: np.ndarray) -> Transform:
        h, w = self.shape_list[np.random.randint(low=0, high=len(self.shape_list))]
        return ResizeTransform(image.shape[0], image.shape[1], h, w, self.interp)


class MinIoURandomCrop(Augmentation):
    """SSD-style crop: picks a minimum IoU from `min_ious` (or no crop), then samples
    crops of at least `min_crop_size` (relative) and aspect ratio in [0.5, 2] until one
    overlaps every box with at least that IoU and contains some box centre."""

    def __init__(
        self,
        min_ious: Sequence[float] = (0.1, 0.3, 0.5, 0.7, 0.9),
        min_crop_size: float = 0.3,
        mode_trials: int = 1000,
        crop_trials: int = 50,
    ):
        super().__init__()
        self.min_ious = min_ious
        self.sample_mode = (1, *min_ious, 0)  # 1: keep the image whole
        self.min_crop_size = min_crop_size
        self.mode_trials = mode_trials
        self.crop_trials = crop_trials

    def get_transform(self, image: np.ndarray, boxes: Optional[np.ndarray]) -> Transform:
        if boxes is None:
            return NoOpTransform()
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        h, w = image.shape[:2]
        for _ in range(self.mode_trials):
            mode = self.sample_mode[np.random.randint(len(self.sample_mode))]
            self.mode = mode
            if mode == 1:
                return NoOpTransform()
            crop = self._try_crops(boxes, h, w, mode)
            if crop is not None:
                return crop
        return NoOpTransform()

    def _try_crops(self, boxes: np.ndarray, h: int, w: int, min_iou: float) -> Optional[Transform]:
        centers = (boxes[:, :2] + boxes[:, 2:]) / 2
        for _ in range(self.crop_trials):
            new_w = np.random.uniform(self.min_crop_size * w, w)
            new_h = np.random.uniform(self.min_crop_size * h, h)
            if not 0.5 <= new_h / new_w <= 2:
                continue
            left = np.random.uniform(w - new_w)
            top = np.random.uniform(h - new_h)
            patch = np.array((int(left), int(top), int(left + new_w), int(top + new_h)))
            if patch[2] == patch[0] or patch[3] == patch[1]:
                continue
            if len(boxes):
                ious = pairwise_iou(Boxes(patch.reshape(-1, 4)), Boxes(boxes)).reshape(-1)
                if ious.min() < min_iou:
                    continue
                inside = (
                    (centers[:, 0] > patch[0])
                    & (centers[:, 1] > patch[1])
                    & (centers[:, 0] < patch[2])
                    & (centers[:, 1] < patch[3])
                )
                if not inside.any():
                    continue
            return CropTransform(int(left), int(top), int(new_w), int(new_h))
        return None
