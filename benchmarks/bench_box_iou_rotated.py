"""box_iou_rotated vs torchvision.ops.box_iou (same boxes at angle 0) and a plain-PyTorch
rotated-IoU reference (vectorised polygon intersection), at Mask R-CNN-like sizes.

    python benchmarks/bench_box_iou_rotated.py [--device cuda] [--quick]
"""
import os
import sys

import torch
from torchvision.ops import box_iou

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
from common import describe_device, parse_args, print_table, time_fn  # noqa: E402

from detectron2.layers.rotated_boxes import pairwise_iou_rotated  # noqa: E402


def proposals(n: int, device: str, seed: int, angles: bool = True) -> torch.Tensor:
    """Rotated boxes spread over an 800 x 1333 image, 16-256 px sides."""
    g = torch.Generator().manual_seed(seed)
    ctr = torch.rand(n, 2, generator=g) * torch.tensor([1333.0, 800.0])
    wh = torch.rand(n, 2, generator=g) * 240 + 16
    ang = (torch.rand(n, 1, generator=g) * 360 - 180) if angles else torch.zeros(n, 1)
    return torch.cat([ctr, wh, ang], dim=1).to(device)


def _corners(b: torch.Tensor) -> torch.Tensor:
    t = torch.deg2rad(b[:, 4])
    c, s = torch.cos(t), torch.sin(t)
    u = torch.tensor([-0.5, 0.5, 0.5, -0.5], device=b.device)[None] * b[:, 2:3]
    v = torch.tensor([-0.5, -0.5, 0.5, 0.5], device=b.device)[None] * b[:, 3:4]
    # Counter-clockwise on screen (y down): local (u, v) -> (x + u cos + v sin, y - u sin + v cos).
    x = b[:, 0:1] + u * c[:, None] + v * s[:, None]
    y = b[:, 1:2] - u * s[:, None] + v * c[:, None]
    return torch.stack([x, y], dim=-1)  # (N, 4, 2)


def _cross(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def _inside(pts: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """pts (n, M, 4, 2) against boxes broadcast as (n|1, M|1, 5)."""
    t = torch.deg2rad(boxes[..., 4])[..., None]
    d = pts - boxes[..., None, :2]
    u = d[..., 0] * torch.cos(t) - d[..., 1] * torch.sin(t)  # inverse of _corners' map
    v = d[..., 0] * torch.sin(t) + d[..., 1] * torch.cos(t)
    tol = 1e-5 * boxes[..., 2:4].max(dim=-1).values[..., None]
    return (u.abs() <= boxes[..., 2:3] / 2 + tol) & (v.abs() <= boxes[..., 3:4] / 2 + tol)


def torch_reference_iou(b1: torch.Tensor, b2: torch.Tensor, chunk_pairs: int = 2_000_000) -> torch.Tensor:
    """Plain-PyTorch rotated IoU: crossings + contained corners, angular sort, shoelace."""
    c2 = _corners(b2)[None]  # (1, M, 4, 2)
    e2 = torch.roll(c2, -1, dims=2) - c2
    area2 = b2[:, 2] * b2[:, 3]
    rows = max(1, chunk_pairs // max(1, len(b2)))
    out = []
    for start in range(0, len(b1), rows):
        a = b1[start : start + rows]
        c1 = _corners(a)[:, None]  # (n, 1, 4, 2)
        e1 = torch.roll(c1, -1, dims=2) - c1
        p, d = c1[:, :, :, None], e1[:, :, :, None]
        q, e = c2[:, :, None], e2[:, :, None]
        den = _cross(d, e)
        safe = torch.where(den == 0, torch.ones_like(den), den)
        t, u = _cross(q - p, e) / safe, _cross(q - p, d) / safe
        hit = (den != 0) & (t >= 0) & (t <= 1) & (u >= 0) & (u <= 1)  # (n, M, 4, 4)
        crossings = (p + t[..., None] * d).flatten(2, 3)
        n, m = hit.shape[:2]
        pts = torch.cat([crossings, c1.expand(n, m, 4, 2), c2.expand(n, m, 4, 2)], dim=2)
        valid = torch.cat(
            [hit.flatten(2), _inside(c1.expand(n, m, 4, 2), b2[None]), _inside(c2.expand(n, m, 4, 2), a[:, None])],
            dim=2,
        )
        w = valid.to(pts.dtype)[..., None]
        centre = (pts * w).sum(2, keepdim=True) / w.sum(2, keepdim=True).clamp(min=1)
        rel = pts - centre
        ang = torch.atan2(rel[..., 1], rel[..., 0]).masked_fill(~valid, float("inf"))
        order = ang.argsort(dim=2)
        rel = torch.gather(rel, 2, order[..., None].expand_as(rel))
        ok = torch.gather(valid, 2, order)
        rel = torch.where(ok[..., None], rel, rel[:, :, :1])  # padding repeats a vertex: no area
        inter = 0.5 * _cross(rel, torch.roll(rel, -1, dims=2)).sum(2).abs()
        inter = inter * (ok.sum(2) >= 3)
        union = (a[:, 2] * a[:, 3])[:, None] + area2[None] - inter
        iou = torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))
        degenerate = (a[:, 2:4].min(1).values <= 0)[:, None] | (b2[:, 2:4].min(1).values <= 0)[None]
        out.append(iou.masked_fill(degenerate, 0))
    return torch.cat(out)


def _xyxy(b: torch.Tensor) -> torch.Tensor:
    return torch.cat([b[:, :2] - b[:, 2:4] / 2, b[:, :2] + b[:, 2:4] / 2], dim=1)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    sizes = [(200, 200)] if args.quick else [(1000, 1000), (4000, 4000)]
    print(f"box_iou_rotated on {describe_device(args.device)}\n")
    rows = []
    for n, m in sizes:
        b1, b2 = proposals(n, args.device, 0), proposals(m, args.device, 1)
        a1, a2 = proposals(n, args.device, 0, angles=False), proposals(m, args.device, 1, angles=False)
        x1, x2 = _xyxy(a1), _xyxy(a2)
        big = n * m > 2_000_000
        iters = max(1, args.iters // 5) if big else args.iters
        ours = time_fn(lambda: pairwise_iou_rotated(b1, b2), args.device, warmup=1, iters=iters)
        ours0 = time_fn(lambda: pairwise_iou_rotated(a1, a2), args.device, warmup=1, iters=iters)
        tv = time_fn(lambda: box_iou(x1, x2), args.device, warmup=1, iters=iters)
        if big and args.device == "cpu":
            # The vectorised reference needs minutes per call here; it is timed on CUDA.
            ref, ratio, err = float("nan"), float("nan"), "-"
        else:
            ref = time_fn(lambda: torch_reference_iou(b1, b2), args.device, warmup=1, iters=min(iters, 3))
            ratio = ours / ref
            err = f"{(pairwise_iou_rotated(b1, b2) - torch_reference_iou(b1, b2)).abs().max().item():.1e}"
        rows.append((f"{n}x{m}", ours, ref, ratio, ours0, tv, ours0 / tv, err))
    print_table(
        rows,
        [
            "boxes",
            "ours rotated (ms)",
            "torch ref (ms)",
            "ours/ref",
            "ours angle 0 (ms)",
            "torchvision box_iou (ms)",
            "ours/torchvision",
            "max |ours-ref|",
        ],
    )


if __name__ == "__main__":
    main()
