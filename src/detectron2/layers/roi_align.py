"""RoIAlign over axis-aligned boxes, on top of torchvision's kernel."""
from typing import Tuple, Union

import torch
from torch import nn
from torchvision.ops import roi_align

__all__ = ["ROIAlign", "roi_align"]


class ROIAlign(nn.Module):
    def __init__(
        self,
        output_size: Union[int, Tuple[int, int]],
        spatial_scale: float,
        sampling_ratio: int,
        aligned: bool = True,
    ):
        """
        Args:
            output_size (int, tuple[int]): h, w of the pooled output.
            spatial_scale (float): scale of the input map relative to the boxes' frame.
            sampling_ratio (int): samples per bin along each side; <= 0 is adaptive.
            aligned (bool): when True, box corners are shifted by -0.5 so that pixel
                centres sit at index + 0.5 (the correct model); False keeps the legacy
                Detectron behaviour, which misaligns boxes by half a pixel.
        """
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned

    def forward(self, input: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        """
        Args:
            input: NCHW feature map.
            rois: (K, 5): batch index, then the box (x0, y0, x1, y1).
        """
        assert rois.dim() == 2 and rois.size(1) == 5, "rois must have shape (K, 5)"
        if input.is_quantized:
            input = input.dequantize()
        return roi_align(
            input,
            rois.to(dtype=input.dtype),
            self.output_size,
            self.spatial_scale,
            self.sampling_ratio,
            self.aligned,
        )

    def __repr__(self):
        return (
            f"{self.__class__.__name__}(output_size={self.output_size}, "
            f"spatial_scale={self.spatial_scale}, sampling_ratio={self.sampling_ratio}, "
            f"aligned={self.aligned})"
        )
