"""Training data loader throughput on the generated shapes dataset: ours
(build_detection_train_loader: serialized dataset dicts, infinite sharded sampler,
aspect-ratio grouping) vs a plain torch DataLoader over the same dicts and files.

Both sides run the same mapper (decode the PNG with cv2, HWC->CHW uint8 tensor, boxes
and classes as tensors), batch size 2 per step, with 0 and 2 worker processes, so the
ratio is the cost of our loading machinery. Images are 480x640 (COCO-like; --quick:
128x128). The data loader runs on the CPU whatever --device says (as in training);
--device only names the machine in the header.

Usage: python benchmarks/bench_data_loader.py [--device cuda] [--quick] [--iters N]
"""
import itertools
import os
import sys
import tempfile
import time
from typing import Callable, Dict, Iterable, List

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import describe_device, parse_args, print_table  # noqa: E402

from detectron2.data import DatasetCatalog, build_detection_train_loader  # noqa: E402
from detectron2.data.datasets.shapes import generate_shapes_dataset, register_shapes  # noqa: E402
from detectron2.structures import BoxMode  # noqa: E402

BATCH_SIZE = 2


def shapes_mapper(dataset_dict: Dict) -> Dict:
    """A minimal detection mapper: what any loader must do per image."""
    image = cv2.imread(dataset_dict["file_name"], cv2.IMREAD_COLOR)
    boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in dataset_dict["annotations"]]
    return {
        "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
        "width": dataset_dict["width"],
        "height": dataset_dict["height"],
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "classes": torch.tensor([a["category_id"] for a in dataset_dict["annotations"]], dtype=torch.int64),
    }


class _ListDataset(torch.utils.data.Dataset):
    """The peer: a plain Python list of dicts, mapped on access."""

    def __init__(self, dicts: List[Dict], mapper: Callable):
        self.dicts = dicts
        self.mapper = mapper

    def __len__(self) -> int:
        return len(self.dicts)

    def __getitem__(self, i: int) -> Dict:
        return self.mapper(self.dicts[i])


def _ours(dicts: List[Dict], num_workers: int) -> Iterable:
    return build_detection_train_loader(
        dicts, mapper=shapes_mapper, total_batch_size=BATCH_SIZE, aspect_ratio_grouping=True, num_workers=num_workers
    )


def _peer(dicts: List[Dict], num_workers: int) -> Iterable:
    sampler = RandomSampler(range(len(dicts)), replacement=True, num_samples=10**8)
    return DataLoader(
        _ListDataset(dicts, shapes_mapper), batch_size=BATCH_SIZE, sampler=sampler,
        num_workers=num_workers, collate_fn=list, drop_last=True,
    )


def _rate(it, batches: int) -> float:
    t0 = time.perf_counter()
    for batch in itertools.islice(it, batches):
        assert len(batch) == BATCH_SIZE
    return batches * BATCH_SIZE / (time.perf_counter() - t0)


def images_per_second(loaders: List[Iterable], batches: int, repeats: int) -> List[float]:
    """Median images/s of each loader over ``repeats`` runs of ``batches`` batches.

    Runs alternate between the loaders (after a warm-up that starts their workers), so
    a load change on a shared machine hits all of them alike.
    """
    iterators = [iter(loader) for loader in loaders]
    for it in iterators:
        _rate(it, 4)
    rates: List[List[float]] = [[] for _ in loaders]
    for _ in range(repeats):
        for it, r in zip(iterators, rates):
            r.append(_rate(it, batches))
    return [float(np.median(r)) for r in rates]


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    num_images, size = (32, (128, 128)) if args.quick else (200, (480, 640))
    batches = 10 if args.quick else 50
    print(f"# data loader: shapes dataset, {num_images} images {size[0]}x{size[1]}, batch {BATCH_SIZE}")
    print(f"# {describe_device('cpu')}; median of {args.iters} runs of {batches} batches; ratio = ours/peer throughput (>1: ours faster)\n")
    with tempfile.TemporaryDirectory() as root:
        t0 = time.perf_counter()
        generate_shapes_dataset(root, num_images=num_images, image_size=size, seed=0)
        gen_time = time.perf_counter() - t0
        register_shapes("bench_shapes", root)
        dicts = DatasetCatalog.get("bench_shapes")
        rows = []
        for workers in (0, 2):
            ours, peer = images_per_second([_ours(dicts, workers), _peer(dicts, workers)], batches, args.iters)
            rows.append([workers, ours, peer, ours / peer])
        print_table(rows, ["workers", "ours (img/s)", "torch DataLoader (img/s)", "ratio"])
        print(f"\ngenerating the dataset took {gen_time:.2f} s ({num_images / gen_time:.0f} images/s)")


if __name__ == "__main__":
    main()
