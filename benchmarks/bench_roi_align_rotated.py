"""ROIAlignRotated (ours) vs torchvision.ops.roi_align (aligned=True) on the same boxes
at angle 0, and vs a plain-PyTorch reference, forward and forward+backward.

    python benchmarks/bench_roi_align_rotated.py [--device cuda] [--quick]

Sizes are the issue-13 ones, Mask R-CNN's FPN level p2 on an 800x1088 image: a
(2, 256, 200, 272) map at stride 4, 1024 rois of 16-256 pixels, 7x7 (box head; 14x14,
the mask head, too) outputs, adaptive sampling (sampling_ratio=0). Our rois are at
angle 0, so torchvision's roi_align computes the same numbers.
"""
import math
import os
import sys

import torch
import torchvision

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "benchmarks"), os.path.join(ROOT, "src"), os.path.join(ROOT, "tests", "layers")]

from common import describe_device, parse_args, print_table, time_fn  # noqa: E402
from roi_align_rotated_ref import roi_align_rotated_ref  # noqa: E402

from detectron2.layers import roi_align_rotated  # noqa: E402

SCALE = 0.25
SAMPLING_RATIO = 0
REF_ROIS = 16


def make_rois(num, batch, height, width, device, seed=0):
    """Axis-aligned rois (angle 0) in image pixels: (K, 6) for us, (K, 5) for torchvision."""
    g = torch.Generator().manual_seed(seed)
    img_h, img_w = height / SCALE, width / SCALE
    wh = torch.exp(torch.empty(num, 2).uniform_(math.log(16.0), math.log(256.0), generator=g))  # log-uniform sizes
    ctr = torch.rand(num, 2, generator=g) * torch.tensor([img_w, img_h])
    idx = torch.randint(0, batch, (num, 1), generator=g).float()
    rotated = torch.cat([idx, ctr, wh, torch.zeros(num, 1)], dim=1).to(device)
    corners = [rotated[:, 1:3] - rotated[:, 3:5] / 2, rotated[:, 1:3] + rotated[:, 3:5] / 2]
    boxes = torch.cat([rotated[:, :1]] + corners, dim=1)
    return rotated, boxes


def step(fn, x, backward):
    def run():
        out = fn(x)
        if backward:
            out.backward(torch.ones_like(out))
        return out

    return run


def main():
    args = parse_args(__doc__.splitlines()[0])
    device = args.device
    if args.quick:
        shape, roi_counts, sizes = (2, 16, 50, 84), [64], [7, 14]
    else:
        shape, roi_counts, sizes = (2, 256, 200, 272), [1024], [7, 14]
    print(f"# ROIAlignRotated on {describe_device(device)}; map {shape}, scale {SCALE}, sampling_ratio {SAMPLING_RATIO}")
    x = torch.randn(shape, device=device)
    # The reference loops over rois in Python, so its time is linear in their number:
    # it is timed on the first REF_ROIS rois and scaled to all of them.
    ref_iters = max(1, min(args.iters, 3))
    rows = []
    for num in roi_counts:
        rotated, boxes = make_rois(num, shape[0], shape[2], shape[3], device)
        for size in sizes:
            ours = lambda t: roi_align_rotated(t, rotated, (size, size), SCALE, SAMPLING_RATIO)  # noqa: E731
            theirs = lambda t: torchvision.ops.roi_align(t, boxes, (size, size), SCALE, SAMPLING_RATIO, True)  # noqa: E731
            ref_rois = rotated[:REF_ROIS]
            ref = lambda t: roi_align_rotated_ref(t, ref_rois, (size, size), SCALE, SAMPLING_RATIO)  # noqa: E731
            # Same numbers up to float32 rounding of the sample coordinates (formulas differ).
            torch.testing.assert_close(ours(x), theirs(x), rtol=1e-3, atol=1e-3)
            for backward in (False, True):
                xi = x.clone().requires_grad_(backward)
                t_ours = time_fn(step(ours, xi, backward), device, iters=args.iters)
                t_tv = time_fn(step(theirs, xi, backward), device, iters=args.iters)
                t_ref = time_fn(step(ref, xi, backward), device, warmup=1, iters=ref_iters) * num / len(ref_rois)
                pass_name = "fwd+bwd" if backward else "fwd"
                rows.append([num, f"{size}x{size}", pass_name, t_ours, t_tv, t_ours / t_tv, t_ref, t_ours / t_ref])
    print_table(rows, ["rois", "output", "pass", "ours ms", "torchvision ms", "ours/tv", "reference ms (scaled)", "ours/ref"])


if __name__ == "__main__":
    main()
