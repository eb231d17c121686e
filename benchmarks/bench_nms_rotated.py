"""nms_rotated (ours) vs torchvision.ops.nms on the same boxes at angle 0, and vs a
plain-PyTorch greedy NMS over the plain-PyTorch rotated IoU on boxes at random angles,
at the issue-13 sizes (2k and 10k Mask R-CNN-like proposals).

    python benchmarks/bench_nms_rotated.py [--device cuda] [--quick]
"""
import os
import sys

import torch
from torchvision.ops import nms as tv_nms

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
from bench_box_iou_rotated import proposals, torch_reference_iou  # noqa: E402
from common import describe_device, parse_args, print_table, time_fn  # noqa: E402

from detectron2.layers import nms_rotated  # noqa: E402


def reference_nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """Plain PyTorch: the full IoU matrix, then the greedy pass on the host."""
    order = torch.sort(scores, descending=True, stable=True)[1]
    over = (torch_reference_iou(boxes[order], boxes[order]) > threshold).cpu()
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    keep = []
    for i in range(len(order)):
        if not suppressed[i]:
            keep.append(i)
            suppressed |= over[i]
    return order[torch.tensor(keep, dtype=torch.long, device=order.device)]


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    sizes = [300] if args.quick else [2000, 10000]
    threshold = 0.7  # RPN NMS threshold
    print(f"nms_rotated on {describe_device(args.device)}, IoU threshold {threshold}\n")
    rows = []
    for n in sizes:
        scores = torch.rand(n, generator=torch.Generator().manual_seed(n)).to(args.device)
        flat = proposals(n, args.device, seed=n, angles=False)
        rotated = proposals(n, args.device, seed=n)
        xyxy = torch.cat([flat[:, :2] - flat[:, 2:4] / 2, flat[:, :2] + flat[:, 2:4] / 2], dim=1)
        ours = time_fn(lambda: nms_rotated(rotated, scores, threshold), args.device, iters=args.iters)
        ours0 = time_fn(lambda: nms_rotated(flat, scores, threshold), args.device, iters=args.iters)
        tv = time_fn(lambda: tv_nms(xyxy, scores, threshold), args.device, iters=args.iters)
        ref = time_fn(lambda: reference_nms(rotated, scores, threshold), args.device, warmup=1, iters=1)
        same_tv = nms_rotated(flat, scores, threshold).tolist() == tv_nms(xyxy, scores, threshold).tolist()
        keep = nms_rotated(rotated, scores, threshold)
        same_ref = keep.tolist() == reference_nms(rotated, scores, threshold).tolist()
        rows.append(
            (n, ours, ref, ours / ref, "yes" if same_ref else "NO", len(keep),
             ours0, tv, ours0 / tv, "yes" if same_tv else "NO")
        )
    print_table(
        rows,
        [
            "boxes",
            "ours rotated (ms)",
            "torch ref (ms)",
            "ours/ref",
            "same keep as ref",
            "kept",
            "ours angle 0 (ms)",
            "torchvision nms (ms)",
            "ours/torchvision",
            "same keep as tv",
        ],
    )


if __name__ == "__main__":
    main()
