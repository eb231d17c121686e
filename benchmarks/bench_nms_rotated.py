"""nms_rotated vs torchvision.ops.nms on the same boxes at angle 0, plus nms_rotated on
boxes with random angles, for 1k / 5k / 10k Mask R-CNN-like proposals.

    python benchmarks/bench_nms_rotated.py [--device cuda] [--quick]
"""
import os
import sys

import torch
from torchvision.ops import nms as tv_nms

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
from bench_box_iou_rotated import proposals  # noqa: E402
from common import describe_device, parse_args, print_table, time_fn  # noqa: E402

from detectron2.layers import nms_rotated  # noqa: E402


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    sizes = [300] if args.quick else [1000, 5000, 10000]
    threshold = 0.7  # RPN NMS threshold
    print(f"nms_rotated on {describe_device(args.device)}, IoU threshold {threshold}\n")
    rows = []
    for n in sizes:
        scores = torch.rand(n, generator=torch.Generator().manual_seed(n)).to(args.device)
        flat = proposals(n, args.device, seed=n, angles=False)
        rotated = proposals(n, args.device, seed=n)
        xyxy = torch.cat([flat[:, :2] - flat[:, 2:4] / 2, flat[:, :2] + flat[:, 2:4] / 2], dim=1)
        ours0 = time_fn(lambda: nms_rotated(flat, scores, threshold), args.device, iters=args.iters)
        tv = time_fn(lambda: tv_nms(xyxy, scores, threshold), args.device, iters=args.iters)
        ours = time_fn(lambda: nms_rotated(rotated, scores, threshold), args.device, iters=args.iters)
        same = nms_rotated(flat, scores, threshold).tolist() == tv_nms(xyxy, scores, threshold).tolist()
        kept = len(nms_rotated(rotated, scores, threshold))
        rows.append((n, ours0, tv, ours0 / tv, "yes" if same else "NO", ours, kept))
    print_table(
        rows,
        [
            "boxes",
            "ours angle 0 (ms)",
            "torchvision nms (ms)",
            "ours/torchvision",
            "same keep",
            "ours rotated (ms)",
            "kept (rotated)",
        ],
    )


if __name__ == "__main__":
    main()
