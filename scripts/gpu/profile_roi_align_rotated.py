"""Kernel-level profile of roi_align_rotated (ours) and torchvision's roi_align at the
issue-13 shape (1024 rois on 2x256x200x272, 7x7, angle 0), forward and fwd+bwd, plus
nms_rotated at 2k boxes: where the time goes (kernels, copies, syncs).

    PYTHONPATH=src python3 scripts/gpu/profile_roi_align_rotated.py
"""
import os
import sys

import torch
import torchvision
from torch.profiler import ProfilerActivity, profile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [os.path.join(ROOT, "benchmarks"), os.path.join(ROOT, "src")]
from bench_box_iou_rotated import proposals  # noqa: E402
from bench_roi_align_rotated import SCALE, make_rois  # noqa: E402

from detectron2.layers import nms_rotated, roi_align_rotated  # noqa: E402


def show(title, fn, iters=10):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(iters):
            fn()
        torch.cuda.synchronize()
    print(f"\n### {title} ({iters} calls)")
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=12))


def main():
    x = torch.randn(2, 256, 200, 272, device="cuda", requires_grad=True)
    rotated, boxes = make_rois(1024, 2, 200, 272, "cuda")

    def ours(backward):
        out = roi_align_rotated(x, rotated, (7, 7), SCALE, 0)
        if backward:
            out.backward(torch.ones_like(out))

    def theirs(backward):
        out = torchvision.ops.roi_align(x, boxes, (7, 7), SCALE, 0, True)
        if backward:
            out.backward(torch.ones_like(out))

    show("ours fwd", lambda: ours(False))
    show("torchvision fwd", lambda: theirs(False))
    show("ours fwd+bwd", lambda: ours(True))
    show("torchvision fwd+bwd", lambda: theirs(True))
    b = proposals(2000, "cuda", seed=2000)
    s = torch.rand(2000, device="cuda")
    show("nms_rotated 2k", lambda: nms_rotated(b, s, 0.7))


if __name__ == "__main__":
    main()
