"""Data pipeline benchmark: DatasetMapper (read, ResizeShortestEdge, RandomFlip,
annotations -> Instances) beside a hand-written numpy + OpenCV pipeline that does the
same work, on generated JPEG images with polygon annotations.

    python benchmarks/bench_data_pipeline.py [--quick] [--iters N]

The data pipeline runs on the CPU in loader workers; --device is accepted for
uniformity with the other benchmarks and must be cpu.
"""
import os
import sys
import tempfile
from typing import Dict, List, Tuple

import cv2
import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import describe_device, parse_args, print_table, time_fn  # noqa: E402

from detectron2.data import DatasetMapper  # noqa: E402
from detectron2.data import transforms as T  # noqa: E402
from detectron2.structures import BoxMode  # noqa: E402


def _make_dict(folder: str, h: int, w: int, n_inst: int, seed: int) -> Dict:
    """A JPEG of coloured blobs with one polygon annotation per blob."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 60, size=(h, w, 3), dtype=np.uint8)
    annos = []
    for _ in range(n_inst):
        cx, cy = rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h
        r = rng.uniform(0.03, 0.15) * min(h, w)
        angles = np.sort(rng.uniform(0, 2 * np.pi, 12))
        pts = np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], axis=1)
        pts = np.clip(pts, 0, [w - 1, h - 1])
        cv2.fillPoly(img, [np.round(pts).astype(np.int32)], rng.integers(80, 255, 3).tolist())
        x0, y0 = pts.min(axis=0)
        x1, y1 = pts.max(axis=0)
        annos.append(
            {
                "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                "bbox_mode": BoxMode.XYWH_ABS,
                "category_id": int(rng.integers(0, 80)),
                "segmentation": [pts.reshape(-1).tolist()],
                "iscrowd": 0,
            }
        )
    path = os.path.join(folder, f"img_{h}x{w}_{seed}.jpg")
    cv2.imwrite(path, img)
    return {"file_name": path, "height": h, "width": w, "image_id": seed, "annotations": annos}


def _output_size(h: int, w: int, short: int, max_size: int) -> Tuple[int, int]:
    scale = min(short / min(h, w), max_size / max(h, w))
    return int(h * scale + 0.5), int(w * scale + 0.5)


def reference_mapper(d: Dict, short: int, max_size: int, flip: bool, is_train: bool) -> Dict:
    """What DatasetMapper does, written directly against OpenCV and numpy."""
    img = cv2.imread(d["file_name"], cv2.IMREAD_COLOR)  # BGR uint8
    h, w = img.shape[:2]
    nh, nw = _output_size(h, w, short, max_size)
    img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    if flip:
        img = img[:, ::-1]
    out = {"image": torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))), "height": h, "width": w}
    if not is_train:
        return out
    sx, sy = nw / w, nh / h
    annos = [a for a in d["annotations"] if a.get("iscrowd", 0) == 0]
    boxes = np.array([a["bbox"] for a in annos], dtype=np.float64).reshape(-1, 4)
    boxes[:, 2:] += boxes[:, :2]
    boxes *= [sx, sy, sx, sy]
    polys: List[List[np.ndarray]] = []
    for a in annos:
        parts = []
        for p in a["segmentation"]:
            p = np.asarray(p, dtype=np.float64).reshape(-1, 2) * [sx, sy]
            if flip:
                p[:, 0] = nw - p[:, 0]
            parts.append(p.reshape(-1))
        polys.append(parts)
    if flip:
        boxes[:, [0, 2]] = nw - boxes[:, [2, 0]]
    boxes = np.clip(boxes, 0, [nw, nh, nw, nh])
    keep = (boxes[:, 2] - boxes[:, 0] > 1e-5) & (boxes[:, 3] - boxes[:, 1] > 1e-5)
    out["gt_boxes"] = torch.as_tensor(boxes[keep], dtype=torch.float32)
    out["gt_classes"] = torch.tensor([a["category_id"] for a, k in zip(annos, keep) if k], dtype=torch.int64)
    out["gt_masks"] = [p for p, k in zip(polys, keep) if k]
    return out


def main() -> None:
    args = parse_args("DatasetMapper vs a plain numpy + OpenCV pipeline")
    if args.device != "cpu":
        raise SystemExit("bench_data_pipeline: the data pipeline runs on the CPU; use --device cpu")
    cv2.setNumThreads(1)  # loader workers are single-threaded processes
    torch.set_num_threads(1)
    sizes = [(480, 640)] if args.quick else [(480, 640), (800, 1333), (1024, 1024)]
    n_inst = 7  # about the COCO average
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for h, w in sizes:
            d = _make_dict(folder, h, w, n_inst, seed=h + w)
            for is_train in (True, False):
                short = 800
                augs = [T.ResizeShortestEdge((short,), 1333, "choice")]
                if is_train:
                    augs.append(T.RandomFlip(prob=1.0))
                mapper = DatasetMapper(
                    is_train, augmentations=augs, image_format="BGR", use_instance_mask=True
                )
                ours_out = mapper(d)
                ref_out = reference_mapper(d, short, 1333, is_train, is_train)
                assert ours_out["image"].shape == ref_out["image"].shape, (ours_out["image"].shape, ref_out["image"].shape)
                if is_train:
                    torch.testing.assert_close(ours_out["instances"].gt_boxes.tensor, ref_out["gt_boxes"])
                ours = time_fn(lambda: mapper(d), iters=args.iters)
                peer = time_fn(lambda: reference_mapper(d, short, 1333, is_train, is_train), iters=args.iters)
                mode = "train (resize+flip, polygons)" if is_train else "test (resize)"
                rows.append(
                    (mode, f"{h}x{w} -> {tuple(ours_out['image'].shape[1:])}", ours, peer, ours / peer,
                     1e3 / ours, 1e3 / peer)
                )
        # The resize alone: PIL (ours, uint8) vs cv2, 480x640 -> 800x1067.
        img = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
        t = T.ResizeTransform(480, 640, 800, 1067)
        ours = time_fn(lambda: t.apply_image(img), iters=args.iters)
        peer = time_fn(lambda: cv2.resize(img, (1067, 800), interpolation=cv2.INTER_LINEAR), iters=args.iters)
        rows.append(("ResizeTransform vs cv2.resize", "480x640 -> 800x1067", ours, peer, ours / peer,
                     1e3 / ours, 1e3 / peer))
    print(f"device: {describe_device('cpu')} (single-threaded, as in a loader worker)")
    print_table(rows, ["case", "size", "ours ms", "reference ms", "ratio", "ours img/s", "reference img/s"])


if __name__ == "__main__":
    main()
