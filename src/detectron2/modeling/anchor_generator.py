"""Anchor generators: reference boxes tiled over each feature map."""
import collections.abc
import math
from typing import List, Sequence

import torch
from torch import nn

from detectron2.config import configurable
from detectron2.layers import ShapeSpec, move_device_like
from detectron2.structures import Boxes, RotatedBoxes
from detectron2.utils.registry import Registry

__all__ = [
    "ANCHOR_GENERATOR_REGISTRY",
    "DefaultAnchorGenerator",
    "RotatedAnchorGenerator",
    "build_anchor_generator",
]

ANCHOR_GENERATOR_REGISTRY = Registry("ANCHOR_GENERATOR")
ANCHOR_GENERATOR_REGISTRY.__doc__ = """
Registry for anchor generators, called as ``obj(cfg, input_shape)`` with
``input_shape`` a list of ShapeSpec, one per feature map.
"""


class BufferList(nn.Module):
    """A list of tensors registered as (non-persistent) buffers, so that they follow
    ``.to(device)`` without appearing in the state_dict."""

    def __init__(self, buffers: List[torch.Tensor]):
        super().__init__()
        for i, buffer in enumerate(buffers):
            self.register_buffer(str(i), buffer, persistent=False)

    def __len__(self):
        return len(self._buffers)

    def __iter__(self):
        return iter(self._buffers.values())


def _create_grid_offsets(size: List[int], stride: int, offset: float, target_device_tensor: torch.Tensor):
    """x and y of every cell's reference point, row-major over an (H, W) grid."""
    grid_height, grid_width = size
    shifts_x = move_device_like(
        torch.arange(offset * stride, grid_width * stride, step=stride, dtype=torch.float32,
                     device=target_device_tensor.device),
        target_device_tensor,
    )
    shifts_y = move_device_like(
        torch.arange(offset * stride, grid_height * stride, step=stride, dtype=torch.float32,
                     device=target_device_tensor.device),
        target_device_tensor,
    )
    shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
    return shift_x.reshape(-1), shift_y.reshape(-1)


def _broadcast_params(params, num_features: int, name: str) -> List[List[float]]:
    """Accept one list for all levels, a list of one list, or one list per level."""
    if not isinstance(params, collections.abc.Sequence) or isinstance(params, str):
        raise TypeError(f"anchor generator: {name} must be a list, got {type(params).__name__}")
    if len(params) == 0:
        raise ValueError(f"anchor generator: {name} must not be empty")
    if not isinstance(params[0], collections.abc.Sequence):
        return [params] * num_features
    if len(params) == 1:
        return list(params) * num_features
    if len(params) != num_features:
        raise ValueError(
            f"anchor generator: {name} has {len(params)} lists for {num_features} feature maps"
        )
    return params


def _check_offset(offset: float) -> float:
    if not 0.0 <= offset < 1.0:
        raise ValueError(f"anchor generator: offset must be in [0, 1), got {offset}")
    return offset


@ANCHOR_GENERATOR_REGISTRY.register()
class DefaultAnchorGenerator(nn.Module):
    """Axis-aligned anchors (x0, y0, x1, y1) of several sizes and aspect ratios centred
    on every cell of each feature map."""

    box_dim: torch.jit.Final[int] = 4

    @configurable
    def __init__(self, *, sizes, aspect_ratios, strides, offset: float = 0.5):
        """
        Args:
            sizes (list[list[float]] or list[float]): anchor sizes (sqrt of area) per
                feature map; a single list is shared by all maps.
            aspect_ratios (list[list[float]] or list[float]): height / width ratios,
                broadcast the same way.
            strides (list[int]): stride of each feature map.
            offset (float): relative position of the first anchor centre within a cell
                (0: top-left corner, 0.5: the centre).
        """
        super().__init__()
        self.strides = strides
        self.num_features = len(self.strides)
        sizes = _broadcast_params(sizes, self.num_features, "sizes")
        aspect_ratios = _broadcast_params(aspect_ratios, self.num_features, "aspect_ratios")
        self.cell_anchors = self._calculate_anchors(sizes, aspect_ratios)
        self.offset = _check_offset(offset)

    @classmethod
    def from_config(cls, cfg, input_shape: List[ShapeSpec]):
        return {
            "sizes": cfg.MODEL.ANCHOR_GENERATOR.SIZES,
            "aspect_ratios": cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS,
            "strides": [x.stride for x in input_shape],
            "offset": cfg.MODEL.ANCHOR_GENERATOR.OFFSET,
        }

    def _calculate_anchors(self, sizes, aspect_ratios) -> BufferList:
        return BufferList([self.generate_cell_anchors(s, a).float() for s, a in zip(sizes, aspect_ratios)])

    @property
    @torch.jit.unused
    def num_cell_anchors(self) -> List[int]:
        """Alias of num_anchors."""
        return self.num_anchors

    @property
    @torch.jit.unused
    def num_anchors(self) -> List[int]:
        """Anchors per spatial position, for each feature map."""
        return [len(cell_anchors) for cell_anchors in self.cell_anchors]

    def _grid_anchors(self, grid_sizes: List[List[int]]) -> List[torch.Tensor]:
        anchors = []
        buffers: List[torch.Tensor] = [x[1] for x in self.cell_anchors.named_buffers()]
        for size, stride, base_anchors in zip(grid_sizes, self.strides, buffers):
            shift_x, shift_y = _create_grid_offsets(size, stride, self.offset, base_anchors)
            shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=1)
            anchors.append((shifts.view(-1, 1, 4) + base_anchors.view(1, -1, 4)).reshape(-1, 4))
        return anchors

    def generate_cell_anchors(
        self, sizes: Sequence[float] = (32, 64, 128, 256, 512), aspect_ratios: Sequence[float] = (0.5, 1, 2)
    ) -> torch.Tensor:
        """Anchors centred at (0, 0), as a (len(sizes) * len(aspect_ratios), 4) XYXY
        tensor: for each size, one box of area size^2 per ratio h / w."""
        anchors = []
        for size in sizes:
            area = size ** 2.0
            for aspect_ratio in aspect_ratios:
                w = math.sqrt(area / aspect_ratio)
                h = aspect_ratio * w
                anchors.append([-w / 2.0, -h / 2.0, w / 2.0, h / 2.0])
        return torch.tensor(anchors)

    def forward(self, features: List[torch.Tensor]) -> List[Boxes]:
        """
        Args:
            features: feature maps (N, C, H, W), one per stride.

        Returns:
            list[Boxes]: per feature map, H * W * A anchors ordered (y, x, anchor).
        """
        if len(features) != self.num_features:
            raise ValueError(f"anchor generator: expected {self.num_features} feature maps, got {len(features)}")
        grid_sizes = [feature_map.shape[-2:] for feature_map in features]
        return [Boxes(x) for x in self._grid_anchors(grid_sizes)]


@ANCHOR_GENERATOR_REGISTRY.register()
class RotatedAnchorGenerator(nn.Module):
    """Rotated anchors (x_ctr, y_ctr, w, h, angle) for rotated detectors (RRPN)."""

    box_dim: torch.jit.Final[int] = 5

    @configurable
    def __init__(self, *, sizes, aspect_ratios, strides, angles, offset: float = 0.5):
        """
        Args:
            sizes, aspect_ratios, strides, offset: as in DefaultAnchorGenerator.
            angles (list[list[float]] or list[float]): anchor angles in degrees
                (counter-clockwise), broadcast like sizes.
        """
        super().__init__()
        self.strides = strides
        self.num_features = len(self.strides)
        sizes = _broadcast_params(sizes, self.num_features, "sizes")
        aspect_ratios = _broadcast_params(aspect_ratios, self.num_features, "aspect_ratios")
        angles = _broadcast_params(angles, self.num_features, "angles")
        self.cell_anchors = self._calculate_anchors(sizes, aspect_ratios, angles)
        self.offset = _check_offset(offset)

    @classmethod
    def from_config(cls, cfg, input_shape: List[ShapeSpec]):
        return {
            "sizes": cfg.MODEL.ANCHOR_GENERATOR.SIZES,
            "aspect_ratios": cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS,
            "strides": [x.stride for x in input_shape],
            "offset": cfg.MODEL.ANCHOR_GENERATOR.OFFSET,
            "angles": cfg.MODEL.ANCHOR_GENERATOR.ANGLES,
        }

    def _calculate_anchors(self, sizes, aspect_ratios, angles) -> BufferList:
        return BufferList(
            [self.generate_cell_anchors(s, a, t).float() for s, a, t in zip(sizes, aspect_ratios, angles)]
        )

    @property
    @torch.jit.unused
    def num_cell_anchors(self) -> List[int]:
        return self.num_anchors

    @property
    @torch.jit.unused
    def num_anchors(self) -> List[int]:
        return [len(cell_anchors) for cell_anchors in self.cell_anchors]

    def _grid_anchors(self, grid_sizes: List[List[int]]) -> List[torch.Tensor]:
        anchors = []
        buffers: List[torch.Tensor] = [x[1] for x in self.cell_anchors.named_buffers()]
        for size, stride, base_anchors in zip(grid_sizes, self.strides, buffers):
            shift_x, shift_y = _create_grid_offsets(size, stride, self.offset, base_anchors)
            zeros = torch.zeros_like(shift_x)
            shifts = torch.stack((shift_x, shift_y, zeros, zeros, zeros), dim=1)
            anchors.append((shifts.view(-1, 1, 5) + base_anchors.view(1, -1, 5)).reshape(-1, 5))
        return anchors

    def generate_cell_anchors(
        self,
        sizes: Sequence[float] = (32, 64, 128, 256, 512),
        aspect_ratios: Sequence[float] = (0.5, 1, 2),
        angles: Sequence[float] = (-90, -60, -30, 0, 30, 60, 90),
    ) -> torch.Tensor:
        """(len(sizes) * len(aspect_ratios) * len(angles), 5) anchors centred at (0, 0),
        ordered size, then ratio, then angle."""
        anchors = []
        for size in sizes:
            area = size ** 2.0
            for aspect_ratio in aspect_ratios:
                w = math.sqrt(area / aspect_ratio)
                h = aspect_ratio * w
                anchors.extend([0.0, 0.0, w, h, float(a)] for a in angles)
        return torch.tensor(anchors)

    def forward(self, features: List[torch.Tensor]) -> List[RotatedBoxes]:
        if len(features) != self.num_features:
            raise ValueError(f"anchor generator: expected {self.num_features} feature maps, got {len(features)}")
        grid_sizes = [feature_map.shape[-2:] for feature_map in features]
        return [RotatedBoxes(x) for x in self._grid_anchors(grid_sizes)]


def build_anchor_generator(cfg, input_shape: List[ShapeSpec]) -> nn.Module:
    """Build the anchor generator named by ``cfg.MODEL.ANCHOR_GENERATOR.NAME``."""
    return ANCHOR_GENERATOR_REGISTRY.get(cfg.MODEL.ANCHOR_GENERATOR.NAME)(cfg, input_shape)
