"""Plain-PyTorch ROIAlignRotated, written independently of the kernels: it lays one
dense sample lattice over the whole rotated box and averages it bin by bin. Used by
the tests as the oracle and by benchmarks/bench_roi_align_rotated.py as a peer."""
import math
from typing import Tuple

import torch


def bilinear(feature: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Samples a (C, H, W) map at points (y, x) of any shape -> (C, *y.shape)."""
    _, H, W = feature.shape
    inside = (y >= -1) & (y <= H) & (x >= -1) & (x <= W)
    y = y.clamp(0, H - 1)
    x = x.clamp(0, W - 1)
    y0 = y.floor().long()
    x0 = x.floor().long()
    y1 = (y0 + 1).clamp(max=H - 1)
    x1 = (x0 + 1).clamp(max=W - 1)
    ly = y - y0.to(y.dtype)
    lx = x - x0.to(x.dtype)
    flat = feature.reshape(feature.shape[0], -1)

    def at(yi, xi):
        return flat[:, (yi * W + xi).reshape(-1)].reshape(feature.shape[0], *y.shape)

    value = (
        at(y0, x0) * ((1 - ly) * (1 - lx))
        + at(y0, x1) * ((1 - ly) * lx)
        + at(y1, x0) * (ly * (1 - lx))
        + at(y1, x1) * (ly * lx)
    )
    return value * inside.to(value.dtype)


def roi_align_rotated_ref(
    input: torch.Tensor, rois: torch.Tensor, output_size: Tuple[int, int], spatial_scale: float, sampling_ratio: int
) -> torch.Tensor:
    ph, pw = output_size
    C = input.shape[1]
    outputs = []
    for b, cx, cy, w, h, angle in rois.tolist():
        cx, cy = cx * spatial_scale - 0.5, cy * spatial_scale - 0.5
        w, h = w * spatial_scale, h * spatial_scale
        gh = sampling_ratio if sampling_ratio > 0 else math.ceil(h / ph)
        gw = sampling_ratio if sampling_ratio > 0 else math.ceil(w / pw)
        if gh * gw == 0:
            outputs.append(input.new_zeros(C, ph, pw))
            continue
        # Centres of a (ph*gh) x (pw*gw) lattice of equal cells covering the box.
        ys = (torch.arange(ph * gh, dtype=input.dtype, device=input.device) + 0.5) * (h / (ph * gh)) - h / 2
        xs = (torch.arange(pw * gw, dtype=input.dtype, device=input.device) + 0.5) * (w / (pw * gw)) - w / 2
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        y = yy * c - xx * s + cy
        x = yy * s + xx * c + cx
        samples = bilinear(input[int(b)], y, x)
        outputs.append(samples.reshape(C, ph, gh, pw, gw).mean(dim=(2, 4)))
    if not outputs:
        return input.new_zeros(0, C, ph, pw)
    return torch.stack(outputs)
