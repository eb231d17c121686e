"""The photometric distortions of SSD (Liu et al., 2016) as a detectron2 Transform."""
import random

import numpy as np

from detectron2.data.transforms import Transform

__all__ = ["ColorAugSSDTransform"]


def _cv2():
    try:
        import cv2
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("ColorAugSSDTransform needs OpenCV (pip install opencv-python-headless)") from e
    return cv2


class ColorAugSSDTransform(Transform):
    """Random brightness, then contrast/saturation/hue in one of two orders, each
    applied with probability 1/2. Works on uint8 HWC images in BGR or RGB; geometry and
    segmentation are unchanged. Uses Python's ``random`` module (as upstream)."""

    def __init__(
        self,
        img_format: str,
        brightness_delta: int = 32,
        contrast_low: float = 0.5,
        contrast_high: float = 1.5,
        saturation_low: float = 0.5,
        saturation_high: float = 1.5,
        hue_delta: int = 18,
    ):
        super().__init__()
        if img_format not in ("BGR", "RGB"):
            raise ValueError(f"ColorAugSSDTransform: img_format must be 'BGR' or 'RGB', got {img_format!r}")
        self.is_rgb = img_format == "RGB"
        del img_format
        self._set_attributes(locals())

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return coords

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return segmentation

    def apply_image(self, img: np.ndarray, interp=None) -> np.ndarray:
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"ColorAugSSDTransform: expects an HxWx3 image, got shape {img.shape}")
        if self.is_rgb:
            img = img[:, :, [2, 1, 0]]
        img = self.brightness(img)
        if random.randrange(2):
            img = self.hue(self.saturation(self.contrast(img)))
        else:
            img = self.contrast(self.hue(self.saturation(img)))
        if self.is_rgb:
            img = img[:, :, [2, 1, 0]]
        return img

    @staticmethod
    def convert(img: np.ndarray, alpha: float = 1, beta: float = 0) -> np.ndarray:
        out = img.astype(np.float32) * alpha + beta
        return np.clip(out, 0, 255).astype(np.uint8)

    def brightness(self, img: np.ndarray) -> np.ndarray:
        if random.randrange(2):
            return self.convert(img, beta=random.uniform(-self.brightness_delta, self.brightness_delta))
        return img

    def contrast(self, img: np.ndarray) -> np.ndarray:
        if random.randrange(2):
            return self.convert(img, alpha=random.uniform(self.contrast_low, self.contrast_high))
        return img

    def saturation(self, img: np.ndarray) -> np.ndarray:
        if random.randrange(2):
            cv2 = _cv2()
            hsv = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_BGR2HSV)
            hsv[:, :, 1] = self.convert(hsv[:, :, 1], alpha=random.uniform(self.saturation_low, self.saturation_high))
            return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
        return img

    def hue(self, img: np.ndarray) -> np.ndarray:
        if random.randrange(2):
            cv2 = _cv2()
            hsv = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_BGR2HSV)
            # OpenCV's 8-bit hue is in [0, 180)
            hsv[:, :, 0] = (hsv[:, :, 0].astype(int) + random.randint(-self.hue_delta, self.hue_delta)) % 180
            return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
        return img
