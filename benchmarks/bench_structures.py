"""Structures benchmark: pairwise_iou, ImageList.from_tensors and polygon rasterisation,
each beside its peer (torchvision or a plain reference) on the same inputs.

    python benchmarks/bench_structures.py [--device cuda] [--quick] [--iters N]
"""
import os
import sys
from typing import List

import cv2
import numpy as np
import torch
from torchvision.ops import box_iou, roi_align

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import describe_device, parse_args, print_table, time_fn  # noqa: E402

from detectron2.structures import Boxes, ImageList, PolygonMasks, pairwise_iou, polygons_to_bitmask  # noqa: E402


def _random_boxes(n: int, size: float, device: str, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * size
    wh = torch.rand(n, 2, generator=g) * size / 4 + 1
    return torch.cat([xy, xy + wh], dim=1).to(device)


def _naive_pad(tensors: List[torch.Tensor], divisor: int) -> torch.Tensor:
    h = max(t.shape[-2] for t in tensors)
    w = max(t.shape[-1] for t in tensors)
    h, w = (h + divisor - 1) // divisor * divisor, (w + divisor - 1) // divisor * divisor
    padded = [torch.nn.functional.pad(t, (0, w - t.shape[-1], 0, h - t.shape[-2])) for t in tensors]
    return torch.stack(padded)


def _random_polygon(g: np.random.Generator, cx: float, cy: float, r: float, k: int = 16) -> np.ndarray:
    angles = np.sort(g.uniform(0, 2 * np.pi, k))
    radii = g.uniform(0.5 * r, r, k)
    return np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1).reshape(-1)


def _fill_poly_cv2(polygons: List[np.ndarray], h: int, w: int) -> np.ndarray:
    mask = np.zeros((h, w), dtype=np.uint8)
    pts = [np.round(p.reshape(-1, 2)).astype(np.int32) for p in polygons]
    cv2.fillPoly(mask, pts, 1)
    return mask.astype(bool)


def bench_iou(args, rows):
    sizes = [(200, 20), (1000, 50)] if args.quick else [(1000, 50), (2000, 100), (20000, 20), (120000, 16)]
    for n, m in sizes:
        a = _random_boxes(n, 800, args.device, 0)
        b = _random_boxes(m, 800, args.device, 1)
        ba, bb = Boxes(a), Boxes(b)
        ours = time_fn(lambda: pairwise_iou(ba, bb), args.device, iters=args.iters)
        peer = time_fn(lambda: box_iou(a, b), args.device, iters=args.iters)
        rows.append(("pairwise_iou vs torchvision.box_iou", f"{n}x{m}", ours, peer, ours / peer))


def bench_image_list(args, rows):
    shapes = [[(3, 200, 300), (3, 180, 320)]] if args.quick else [
        [(3, 800, 1216), (3, 800, 1066)],
        [(3, 800, 1333), (3, 750, 1333), (3, 800, 1201), (3, 640, 1333)],
    ]
    for shape_set in shapes:
        tensors = [torch.rand(*s, device=args.device) for s in shape_set]
        ours = time_fn(lambda: ImageList.from_tensors(tensors, 32), args.device, iters=args.iters)
        peer = time_fn(lambda: _naive_pad(tensors, 32), args.device, iters=args.iters)
        rows.append(("ImageList.from_tensors vs pad+stack", f"{len(tensors)}x{shape_set[0][1:]}", ours, peer, ours / peer))


def bench_polygons(args, rows):
    g = np.random.default_rng(0)
    h, w = (200, 300) if args.quick else (800, 1216)
    n = 8 if args.quick else 64
    instances = [[_random_polygon(g, g.uniform(50, w - 50), g.uniform(50, h - 50), 40)] for _ in range(n)]
    ours = time_fn(lambda: [polygons_to_bitmask(p, h, w) for p in instances], "cpu", iters=args.iters)
    peer = time_fn(lambda: [_fill_poly_cv2(p, h, w) for p in instances], "cpu", iters=args.iters)
    rows.append(("polygons_to_bitmask vs cv2.fillPoly", f"{n} inst {h}x{w}", ours, peer, ours / peer))

    masks = PolygonMasks(instances)
    boxes = masks.get_bounding_boxes().tensor.to(args.device)
    bitmaps = torch.from_numpy(np.stack([polygons_to_bitmask(p, h, w) for p in instances])).to(args.device)
    rois = torch.cat([torch.arange(n, device=args.device, dtype=torch.float32)[:, None], boxes], dim=1)

    def peer_crop():
        # The BitMasks route: RoIAlign of full-image bitmaps, thresholded.
        return roi_align(bitmaps[:, None].float(), rois, (28, 28), 1.0, 0, True).squeeze(1) >= 0.5

    ours = time_fn(lambda: masks.crop_and_resize(boxes, 28), args.device, iters=args.iters)
    peer = time_fn(peer_crop, args.device, iters=args.iters)
    rows.append(("PolygonMasks.crop_and_resize vs bitmap roi_align", f"{n} inst -> 28x28", ours, peer, ours / peer))


def main():
    args = parse_args(__doc__.splitlines()[0])
    print(f"# structures on {describe_device(args.device)}\n")
    rows = []
    bench_iou(args, rows)
    bench_image_list(args, rows)
    bench_polygons(args, rows)
    print_table(rows, ["op", "size", "ours ms", "peer ms", "ours/peer"])


if __name__ == "__main__":
    main()
