"""Visualizer: ours (matplotlib Agg, polygons, labels) vs torchvision.utils' tensor drawing
(draw_bounding_boxes, draw_segmentation_masks, draw_keypoints) on the same predictions.

The two do not draw identically: ours traces mask outlines into polygons, writes a label
per instance and anti-aliases; torchvision blends masks per pixel and draws plain boxes.
The ratio says what the nicer rendering costs. Cases: instance predictions (boxes +
masks + labels; + keypoints) and a semantic segmentation, at a COCO-sized image
(480x640) and Mask R-CNN's test size (800x1333). Predictions live on --device; ours
copies them to the CPU, as it must to draw.

Usage: python benchmarks/bench_visualizer.py [--device cuda] [--quick]
"""
import os
import sys
from types import SimpleNamespace

import numpy as np
import torch
from torchvision.utils import draw_bounding_boxes, draw_keypoints, draw_segmentation_masks

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import describe_device, parse_args, print_table, time_fn  # noqa: E402

from detectron2.structures import Boxes, Instances  # noqa: E402
from detectron2.utils.visualizer import Visualizer  # noqa: E402

META = SimpleNamespace(
    thing_classes=[f"class{i}" for i in range(80)],
    stuff_classes=[f"stuff{i}" for i in range(54)],
    stuff_colors=[tuple(int(v) for v in np.random.RandomState(i).randint(0, 255, 3)) for i in range(54)],
    keypoint_names=[f"kp{i}" for i in range(17)],
    keypoint_connection_rules=[(f"kp{i}", f"kp{i + 1}", (255, 0, 0)) for i in range(16)],
)


def _predictions(h: int, w: int, n: int, device: str, keypoints: bool) -> Instances:
    rng = np.random.RandomState(0)
    x0 = rng.uniform(0, w * 0.7, n)
    y0 = rng.uniform(0, h * 0.7, n)
    bw = rng.uniform(0.05, 0.3, n) * w
    bh = rng.uniform(0.05, 0.3, n) * h
    boxes = torch.tensor(np.stack([x0, y0, np.minimum(x0 + bw, w - 1), np.minimum(y0 + bh, h - 1)], 1), dtype=torch.float32)
    masks = torch.zeros(n, h, w, dtype=torch.bool)
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    for i, (a, b, c, d) in enumerate(boxes.tolist()):
        cx, cy, rx, ry = (a + c) / 2, (b + d) / 2, (c - a) / 2, (d - b) / 2
        masks[i] = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1  # an ellipse in the box
    inst = Instances((h, w))
    inst.pred_boxes = Boxes(boxes)
    inst.scores = torch.from_numpy(rng.uniform(0.5, 1.0, n).astype(np.float32))
    inst.pred_classes = torch.from_numpy(rng.randint(0, 80, n))
    inst.pred_masks = masks
    if keypoints:
        kp = torch.zeros(n, 17, 3)
        kp[:, :, 0] = boxes[:, :1] + torch.rand(n, 17) * (boxes[:, 2:3] - boxes[:, :1])
        kp[:, :, 1] = boxes[:, 1:2] + torch.rand(n, 17) * (boxes[:, 3:4] - boxes[:, 1:2])
        kp[:, :, 2] = 1.0
        inst.pred_keypoints = kp
    return inst.to(device)


def _peer_instances(image: torch.Tensor, inst: Instances):
    labels = [f"{META.thing_classes[c]} {s * 100:.0f}%" for c, s in zip(inst.pred_classes.tolist(), inst.scores.tolist())]
    out = draw_segmentation_masks(image, inst.pred_masks, alpha=0.5)
    out = draw_bounding_boxes(out, inst.pred_boxes.tensor, labels=labels, width=2)
    if inst.has("pred_keypoints"):
        connectivity = [(i, i + 1) for i in range(16)]
        out = draw_keypoints(out, inst.pred_keypoints[:, :, :2], connectivity=connectivity, radius=3)
    return out.cpu().numpy()


def _peer_sem_seg(image: torch.Tensor, sem_seg: torch.Tensor):
    labels = torch.unique(sem_seg)
    masks = sem_seg[None] == labels[:, None, None]
    colors = [META.stuff_colors[int(k)] for k in labels]
    return draw_segmentation_masks(image, masks, alpha=0.8, colors=colors).cpu().numpy()


def _sem_seg(h: int, w: int, device: str) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    # 12 blobby regions: bands cut by a wave
    return (((xx * 6) // w) + 6 * (yy > h / 2 + (h / 8) * torch.sin(xx / 40.0)).long()).to(device)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    device = args.device
    sizes = [(128, 192)] if args.quick else [(480, 640), (800, 1333)]
    counts = [5] if args.quick else [20]
    print(f"# Visualizer vs torchvision.utils drawing on {describe_device(device)}\n")
    rows = []
    for h, w in sizes:
        image_np = np.random.RandomState(1).randint(0, 255, (h, w, 3), dtype=np.uint8)
        image = torch.from_numpy(image_np).permute(2, 0, 1).contiguous().to(device)
        for n in counts:
            for keypoints in (False, True):
                inst = _predictions(h, w, n, device, keypoints)
                ours = time_fn(lambda: Visualizer(image_np, META).draw_instance_predictions(inst).get_image(),
                               device, warmup=1, iters=args.iters)
                peer = time_fn(lambda: _peer_instances(image, inst), device, warmup=1, iters=args.iters)
                what = f"{n} instances: boxes+masks+labels" + ("+17 keypoints" if keypoints else "")
                rows.append((f"{h}x{w}", what, ours, peer, ours / peer))
        sem = _sem_seg(h, w, device)
        ours = time_fn(lambda: Visualizer(image_np, META).draw_sem_seg(sem).get_image(), device, warmup=1, iters=args.iters)
        peer = time_fn(lambda: _peer_sem_seg(image, sem), device, warmup=1, iters=args.iters)
        rows.append((f"{h}x{w}", "sem_seg, 12 classes", ours, peer, ours / peer))
    print_table(rows, ["image", "case", "ours ms", "torchvision ms", "ours/torchvision"])


if __name__ == "__main__":
    main()
