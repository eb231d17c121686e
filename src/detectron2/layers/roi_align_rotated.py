"""RoIAlign over rotated boxes, backed by ``torch.ops.detectron2.roi_align_rotated_*``."""
from typing import Tuple, Union

import torch
from torch import nn
from torch.autograd import Function
from torch.autograd.function import once_differentiable
from torch.nn.modules.utils import _pair

from ._ops import load_C, ops


class _ROIAlignRotated(Function):
    @staticmethod
    def forward(ctx, input, roi, output_size, spatial_scale, sampling_ratio):
        ctx.save_for_backward(roi)
        ctx.output_size = _pair(output_size)
        ctx.spatial_scale = spatial_scale
        ctx.sampling_ratio = sampling_ratio
        ctx.input_shape = input.size()
        return ops().roi_align_rotated_forward(
            input, roi, spatial_scale, ctx.output_size[0], ctx.output_size[1], sampling_ratio
        )

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        (rois,) = ctx.saved_tensors
        bs, ch, h, w = ctx.input_shape
        grad_input = ops().roi_align_rotated_backward(
            grad_output,
            rois,
            ctx.spatial_scale,
            ctx.output_size[0],
            ctx.output_size[1],
            bs,
            ch,
            h,
            w,
            ctx.sampling_ratio,
        )
        return grad_input, None, None, None, None


roi_align_rotated = _ROIAlignRotated.apply


class ROIAlignRotated(nn.Module):
    def __init__(
        self,
        output_size: Union[int, Tuple[int, int]],
        spatial_scale: float,
        sampling_ratio: int,
    ):
        """
        Args:
            output_size (int, tuple[int]): h, w of the pooled output.
            spatial_scale (float): scale of the input map relative to the rois' frame,
                e.g. 1/16 for a stride-16 feature map.
            sampling_ratio (int): samples per bin along each side, at most 256 (a
                larger value raises ValueError: the work grows with its square); <= 0
                picks ceil(roi_size / output_size) adaptively, capped at 256, which
                only changes rois over 256 bins' worth of feature-map pixels long.

        Like ROIAlign(aligned=True): a pixel's centre is at its index + 0.5, so the
        roi centre is shifted by -0.5 before sampling.
        """
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio

    def forward(self, input: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        """
        Args:
            input: NCHW feature map.
            rois: (K, 6): batch index, then the rotated box (x_ctr, y_ctr, w, h, angle
                in degrees, counter-clockwise on screen with y pointing down: the
                convention of box_iou_rotated and RotatedBoxes).
        """
        assert rois.dim() == 2 and rois.size(1) == 6, "rois must have shape (K, 6)"
        orig_dtype = input.dtype
        # Half inputs (e.g. from autocast) are pooled in float32: box coordinates do not
        # survive float16, and float32 is what upstream computes in.
        if orig_dtype == torch.float16 or orig_dtype == torch.bfloat16:
            input = input.float()
        rois = rois.to(dtype=input.dtype)
        output_size = _pair(self.output_size)
        # Autograd Functions cannot be scripted; scripted/traced models are for inference.
        if torch.jit.is_scripting():
            out = torch.ops.detectron2.roi_align_rotated_forward(
                input, rois, self.spatial_scale, output_size[0], output_size[1], self.sampling_ratio
            )
        elif torch.jit.is_tracing():
            out = ops().roi_align_rotated_forward(
                input, rois, self.spatial_scale, output_size[0], output_size[1], self.sampling_ratio
            )
        else:
            out = roi_align_rotated(input, rois, output_size, self.spatial_scale, self.sampling_ratio)
        return out.to(dtype=orig_dtype)

    def __prepare_scriptable__(self):
        load_C()  # the scripted forward calls torch.ops.detectron2 directly
        return self

    def __repr__(self):
        return (
            f"{self.__class__.__name__}(output_size={self.output_size}, "
            f"spatial_scale={self.spatial_scale}, sampling_ratio={self.sampling_ratio})"
        )
