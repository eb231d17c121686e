"""Deterministic transforms: fvcore's family re-exported, plus the resize, rotation,
extent and colour transforms detection needs, and rotated-box support for flips and
resizes."""
from typing import Callable, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from fvcore.transforms.transform import (
    BlendTransform,
    CropTransform,
    GridSampleTransform,
    HFlipTransform,
    NoOpTransform,
    PadTransform,
    ScaleTransform,
    Transform,
    TransformList,
    VFlipTransform,
)
from PIL import Image

from detectron2.layers._errors import ValueAssertionError, ValueKeyError


__all__ = [
    "BlendTransform",
    "CropTransform",
    "GridSampleTransform",
    "HFlipTransform",
    "NoOpTransform",
    "PadTransform",
    "ScaleTransform",
    "Transform",
    "TransformList",
    "VFlipTransform",
    "ExtentTransform",
    "ResizeTransform",
    "RotationTransform",
    "ColorTransform",
    "PILColorTransform",
]

# PIL resampling filters that have a torch.nn.functional.interpolate counterpart.
_PIL_TO_TORCH_MODE = {
    Image.NEAREST: "nearest",
    Image.BILINEAR: "bilinear",
    Image.BICUBIC: "bicubic",
}


def _cv2():
    """OpenCV, which only rotations need; the pip package does not depend on it."""
    try:
        import cv2
    except ImportError as e:
        raise ImportError("RotationTransform needs OpenCV: install opencv-python(-headless) or py-opencv") from e
    return cv2


def _pil_apply(img: np.ndarray, op: Callable[[Image.Image], Image.Image]) -> np.ndarray:
    """Run a PIL image operation on a HxW or HxWxC uint8 array (C == 1 allowed)."""
    squeeze = img.ndim == 3 and img.shape[2] == 1
    pil = Image.fromarray(img[:, :, 0] if squeeze else img)
    out = np.asarray(op(pil))
    return np.expand_dims(out, -1) if squeeze else out


class ExtentTransform(Transform):
    """Crops (or pads) the rectangle `src_rect` = (x0, y0, x1, y1) of the image, which may
    extend past its borders, and resizes it to `output_size` = (h, w). Pixels outside
    the image are set to `fill`."""

    def __init__(self, src_rect: Sequence[float], output_size: Tuple[int, int], interp=Image.BILINEAR, fill=0):
        super().__init__()
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray, interp=None) -> np.ndarray:
        h, w = self.output_size
        method = interp if interp is not None else self.interp

        def extent(pil: Image.Image) -> Image.Image:
            fill = self.fill
            if np.isscalar(fill) and len(pil.getbands()) > 1:
                fill = (fill,) * len(pil.getbands())
            return pil.transform((w, h), Image.EXTENT, data=tuple(self.src_rect), resample=method, fillcolor=fill)

        return _pil_apply(img, extent)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        # Map the rectangle's centre to the output's centre and scale to the output
        # size; in float32 and in this order, as upstream, for the same numbers.
        h, w = self.output_size
        x0, y0, x1, y1 = self.src_rect
        out = np.asarray(coords).astype(np.float32)
        out[:, 0] -= 0.5 * (x0 + x1)
        out[:, 1] -= 0.5 * (y0 + y1)
        out[:, 0] *= w / (x1 - x0)
        out[:, 1] *= h / (y1 - y0)
        out[:, 0] += 0.5 * w
        out[:, 1] += 0.5 * h
        return out

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return self.apply_image(segmentation, interp=Image.NEAREST)


class ResizeTransform(Transform):
    """Resizes an image of size (h, w) to (new_h, new_w).

    uint8 images are resized by PIL's ``Image.resize`` with `interp` (default bilinear),
    exactly as upstream does, so results never depend on whether OpenCV is installed
    (OpenCV's bilinear differs from PIL's by one grey level on many upsampled pixels).
    Float images go through ``torch.nn.functional.interpolate`` with the matching mode.
    Segmentations always use nearest-neighbour sampling.
    """

    def __init__(self, h: int, w: int, new_h: int, new_w: int, interp=None):
        super().__init__()
        if interp is None:
            interp = Image.BILINEAR
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray, interp=None) -> np.ndarray:
        if tuple(img.shape[:2]) != (self.h, self.w):
            raise ValueAssertionError(
                f"ResizeTransform: img must have size (h, w) = {(self.h, self.w)}, got {tuple(img.shape[:2])}"
            )
        if img.ndim > 4:
            raise ValueAssertionError(f"ResizeTransform: img must have at most 4 dims, got shape {img.shape}")
        method = interp if interp is not None else self.interp
        if img.dtype == np.uint8:
            if img.ndim > 3 or (img.ndim == 3 and img.shape[2] not in (1, 2, 3, 4)):
                raise ValueError(
                    "ResizeTransform: a uint8 img must be HxW or HxWxC with C in (1, 2, 3, 4), "
                    f"got shape {img.shape}"
                )
            return _pil_apply(img, lambda pil: pil.resize((self.new_w, self.new_h), method))
        return self._resize_float(img, method)

    def _resize_float(self, img: np.ndarray, method) -> np.ndarray:
        if method not in _PIL_TO_TORCH_MODE:
            raise ValueKeyError(
                f"ResizeTransform: interp {method} has no torch counterpart for {img.dtype} images; "
                "use NEAREST, BILINEAR or BICUBIC"
            )
        if img.ndim not in (2, 3):
            raise ValueError(f"ResizeTransform: a float img must be HxW or HxWxC, got shape {img.shape}")
        mode = _PIL_TO_TORCH_MODE[method]
        t = torch.from_numpy(np.ascontiguousarray(img))
        nchw = t[None, None] if img.ndim == 2 else t.permute(2, 0, 1)[None]
        align = None if mode == "nearest" else False
        out = F.interpolate(nchw, (self.new_h, self.new_w), mode=mode, align_corners=align)[0]
        out = out[0] if img.ndim == 2 else out.permute(1, 2, 0)
        return out.numpy()

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        # Upstream scales in place, so the input dtype is kept (integer coordinates
        # stay integers, truncated like numpy assignment does); we copy first so the
        # caller's array is not modified, and give the same numbers.
        coords = np.array(coords, copy=True)
        coords[:, 0] = coords[:, 0] * (self.new_w * 1.0 / self.w)
        coords[:, 1] = coords[:, 1] * (self.new_h * 1.0 / self.h)
        return coords

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return self.apply_image(segmentation, interp=Image.NEAREST)

    def inverse(self) -> Transform:
        return ResizeTransform(self.new_h, self.new_w, self.h, self.w, self.interp)


class RotationTransform(Transform):
    """Rotates an image of size (h, w) by `angle` degrees counter-clockwise around
    `center` (default: the image centre). With `expand`, the canvas grows to hold the
    whole rotated image and the centre is ignored."""

    def __init__(self, h: int, w: int, angle: float, expand: bool = True, center=None, interp=None):
        super().__init__()
        image_center = np.array((w / 2, h / 2))
        if center is None:
            center = image_center
        if interp is None:
            interp = _cv2().INTER_LINEAR
        rad = np.deg2rad(angle)
        abs_cos, abs_sin = abs(np.cos(rad)), abs(np.sin(rad))
        if expand:
            bound_w, bound_h = np.rint([h * abs_sin + w * abs_cos, h * abs_cos + w * abs_sin]).astype(int)
        else:
            bound_w, bound_h = w, h
        self._set_attributes(locals())
        # Coordinates address pixel corners; cv2 images address pixel centres.
        self.rm_coords = self.create_rotation_matrix()
        self.rm_image = self.create_rotation_matrix(offset=-0.5)

    def _is_identity(self) -> bool:
        return self.angle % 360 == 0

    def apply_image(self, img: np.ndarray, interp=None) -> np.ndarray:
        if len(img) == 0 or self._is_identity():
            return img
        if img.shape[:2] != (self.h, self.w):
            raise ValueError(
                f"RotationTransform: img must have size (h, w) = {(self.h, self.w)}, got {tuple(img.shape[:2])}"
            )
        flags = interp if interp is not None else self.interp
        return _cv2().warpAffine(img, self.rm_image, (int(self.bound_w), int(self.bound_h)), flags=flags)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        coords = np.asarray(coords, dtype=float)
        if len(coords) == 0 or self._is_identity():
            return coords
        return _cv2().transform(coords[:, np.newaxis, :], self.rm_coords)[:, 0, :]

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return self.apply_image(segmentation, interp=_cv2().INTER_NEAREST)

    def create_rotation_matrix(self, offset: float = 0) -> np.ndarray:
        """The 2x3 affine matrix of the rotation, in a frame shifted by `offset` pixels."""
        cv2 = _cv2()
        center = (float(self.center[0] + offset), float(self.center[1] + offset))
        rm = cv2.getRotationMatrix2D(center, self.angle, 1)
        if self.expand:
            # Move the rotated image centre to the centre of the enlarged canvas.
            rot_im_center = cv2.transform(self.image_center[None, None, :] + offset, rm)[0, 0, :]
            new_center = np.array([self.bound_w / 2, self.bound_h / 2]) + offset - rot_im_center
            rm[:, 2] += new_center
        return rm

    def inverse(self) -> Transform:
        """The reverse rotation. With expand, it ends with an integer crop of the
        re-expanded canvas, so it can be off by up to half a pixel."""
        if not self.expand:
            # Same canvas, same centre, opposite angle (content rotated off-canvas is lost).
            return RotationTransform(self.h, self.w, -self.angle, False, self.center, self.interp)
        # Rotate the enlarged canvas back, then cut the original image out of its middle.
        rotation = RotationTransform(self.bound_h, self.bound_w, -self.angle, True, None, self.interp)
        crop = CropTransform(
            (rotation.bound_w - self.w) // 2, (rotation.bound_h - self.h) // 2, self.w, self.h
        )
        return TransformList([rotation, crop])


class ColorTransform(Transform):
    """Applies `op` (an array -> array function) to the image only; geometry unchanged."""

    def __init__(self, op: Callable[[np.ndarray], np.ndarray]):
        if not callable(op):
            raise ValueError(f"ColorTransform: op must be callable, got {type(op)}")
        super().__init__()
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        return self.op(img)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return coords

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return segmentation

    def inverse(self) -> Transform:
        return NoOpTransform()


class PILColorTransform(ColorTransform):
    """Like ColorTransform, but `op` takes and returns a PIL image (e.g. an ImageEnhance
    call); the array is converted on the way in and out."""

    def __init__(self, op: Callable[[Image.Image], Image.Image]):
        if not callable(op):
            raise ValueError(f"PILColorTransform: op must be callable, got {type(op)}")
        super().__init__(op)

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        return np.asarray(super().apply_image(Image.fromarray(img)))


def HFlip_rotated_box(transform: HFlipTransform, rotated_boxes: np.ndarray) -> np.ndarray:
    """Mirror (N, 5) XYWHA boxes: the centre moves across, the angle changes sign."""
    rotated_boxes = np.asarray(rotated_boxes, dtype=np.float64).copy()
    rotated_boxes[:, 0] = transform.width - rotated_boxes[:, 0]
    rotated_boxes[:, 4] = -rotated_boxes[:, 4]
    return rotated_boxes


def Resize_rotated_box(transform: ResizeTransform, rotated_boxes: np.ndarray) -> np.ndarray:
    """Scale (N, 5) XYWHA boxes by an anisotropic resize, exactly as RotatedBoxes.scale.

    With y pointing down and the angle counter-clockwise on screen, a box's width edge
    runs along (cos t, -sin t) and its height edge along (sin t, cos t). After the
    resize they are (sx cos t, -sy sin t) and (sx sin t, sy cos t): the sides take the
    lengths of those vectors and the angle is that of the stretched height edge,
    atan2(sx sin t, sy cos t) (upstream's choice; exact when sx == sy or t is a
    multiple of 90 degrees, where the stretched box is still a rectangle).
    """
    sx = transform.new_w * 1.0 / transform.w
    sy = transform.new_h * 1.0 / transform.h
    rotated_boxes = np.asarray(rotated_boxes, dtype=np.float64).copy()
    rotated_boxes[:, 0] *= sx
    rotated_boxes[:, 1] *= sy
    theta = np.deg2rad(rotated_boxes[:, 4])
    c, s = np.cos(theta), np.sin(theta)
    rotated_boxes[:, 2] *= np.sqrt(np.square(sx * c) + np.square(sy * s))
    rotated_boxes[:, 3] *= np.sqrt(np.square(sx * s) + np.square(sy * c))
    rotated_boxes[:, 4] = np.rad2deg(np.arctan2(sx * s, sy * c))
    return rotated_boxes


def Rotation_rotated_box(transform: "RotationTransform", rotated_boxes: np.ndarray) -> np.ndarray:
    """Rotate (N, 5) XYWHA boxes with the image: a rotation is rigid, so a rotated box
    stays one: its centre follows apply_coords and its angle grows by the image's
    (both counter-clockwise on screen)."""
    rotated_boxes = np.asarray(rotated_boxes, dtype=np.float64).copy()
    if len(rotated_boxes) == 0 or transform._is_identity():
        return rotated_boxes
    rotated_boxes[:, :2] = transform.apply_coords(rotated_boxes[:, :2])
    rotated_boxes[:, 4] += transform.angle
    return rotated_boxes


HFlipTransform.register_type("rotated_box", HFlip_rotated_box)
ResizeTransform.register_type("rotated_box", Resize_rotated_box)
RotationTransform.register_type("rotated_box", Rotation_rotated_box)
NoOpTransform.register_type("rotated_box", lambda t, x: x)
