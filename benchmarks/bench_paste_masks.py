"""paste_masks_in_image vs a naive per-mask reference (one full-image grid_sample per
mask), for Mask R-CNN-like outputs: 28 x 28 masks pasted into an 800 x 1333 image.

    python benchmarks/bench_paste_masks.py [--device cuda] [--quick]
"""
import os
import sys

import torch
from torch.nn import functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
from common import describe_device, parse_args, print_table, time_fn  # noqa: E402

from detectron2.layers import paste_masks_in_image  # noqa: E402


def naive_paste(masks: torch.Tensor, boxes: torch.Tensor, h: int, w: int, threshold: float = 0.5) -> torch.Tensor:
    out = torch.zeros(len(masks), h, w, dtype=torch.bool, device=masks.device)
    ys = torch.arange(h, device=masks.device, dtype=torch.float32) + 0.5
    xs = torch.arange(w, device=masks.device, dtype=torch.float32) + 0.5
    for i in range(len(masks)):
        x0, y0, x1, y1 = boxes[i]
        gx = ((xs - x0) / (x1 - x0) * 2 - 1)[None, :].expand(h, w)
        gy = ((ys - y0) / (y1 - y0) * 2 - 1)[:, None].expand(h, w)
        grid = torch.stack([gx, gy], dim=-1)[None]
        out[i] = F.grid_sample(masks[i][None, None], grid, align_corners=False)[0, 0] >= threshold
    return out


def detections(n: int, h: int, w: int, device: str):
    g = torch.Generator().manual_seed(n)
    masks = torch.rand(n, 28, 28, generator=g)
    xy = torch.rand(n, 2, generator=g) * torch.tensor([w * 0.8, h * 0.8])
    wh = torch.rand(n, 2, generator=g) * torch.tensor([w * 0.3, h * 0.3]) + 8
    return masks.to(device), torch.cat([xy, xy + wh], dim=1).to(device)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    cases = [(10, 200, 300)] if args.quick else [(20, 800, 1333), (100, 800, 1333)]
    print(f"paste_masks_in_image on {describe_device(args.device)}\n")
    rows = []
    for n, h, w in cases:
        masks, boxes = detections(n, h, w, args.device)
        ours = time_fn(lambda: paste_masks_in_image(masks, boxes, (h, w)), args.device, iters=args.iters)
        ref = time_fn(lambda: naive_paste(masks, boxes, h, w), args.device, iters=args.iters)
        differ = (paste_masks_in_image(masks, boxes, (h, w)) != naive_paste(masks, boxes, h, w)).float().mean()
        rows.append((f"{n} masks, {h}x{w}", ours, ref, ours / ref, f"{differ.item():.1e}"))
    print_table(rows, ["case", "ours (ms)", "naive per-mask (ms)", "ours/naive", "pixels differing"])


if __name__ == "__main__":
    main()
