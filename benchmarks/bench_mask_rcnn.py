"""Mask R-CNN R50-FPN, whole model: ours (the model-zoo config) vs torchvision's
maskrcnn_resnet50_fpn, same process, same inputs, random weights.

Inference: images/s and peak GPU memory at 800x1333. Random weights give arbitrary
scores, so both sides run a fixed workload: score threshold 0 and 100 detections per
image, which makes the mask head and mask pasting run on 100 boxes per image on both.
Training (--train): iterations/s and peak memory for a batch of synthetic images with 8
ground-truth boxes and masks each, SGD step included.

Options: --amp (fp16 autocast on CUDA, bf16 on CPU; training uses a GradScaler with fp16),
--channels-last (NHWC weights; activations follow), --batch N (default 1 for inference, 2 for
training), --quick (256x384 images, few iterations: smoke test), --count-ops (instead of
timing, the aten ops and host syncs that one step dispatches: the host's share of a GPU
step, countable on any machine; ours takes the GPU's batched matching path on the CPU too).

Usage: python benchmarks/bench_mask_rcnn.py [--device cuda] [--train] [--amp] [--channels-last]
"""
import argparse
import os
import sys
from typing import Callable, Dict, List, Tuple

import torch
from torchvision.models import resnet50
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.models.detection.mask_rcnn import MaskRCNN
from torchvision.ops import FrozenBatchNorm2d

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import describe_device, print_table, time_fn  # noqa: E402

from detectron2 import model_zoo  # noqa: E402
from detectron2.modeling import batched_matching, build_model  # noqa: E402
from detectron2.structures import BitMasks, Boxes, Instances  # noqa: E402
from detectron2.utils.events import EventStorage  # noqa: E402
from detectron2.utils.testing import DispatchCounter  # noqa: E402

CONFIG = "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"
NUM_GT = 8


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="small images and few iterations (smoke test)")
    parser.add_argument("--iters", type=int, default=None, help="timed iterations per case")
    parser.add_argument("--train", action="store_true", help="time training steps instead of inference")
    parser.add_argument("--batch", type=int, default=None, help="images per iteration")
    parser.add_argument("--amp", action="store_true", help="autocast on both sides")
    parser.add_argument("--channels-last", action="store_true", help="NHWC weights on both sides")
    parser.add_argument(
        "--count-ops", action="store_true",
        help="count the aten ops and host syncs of one step instead of timing (the GPU's code path)",
    )
    args = parser.parse_args()
    if args.iters is None:
        args.iters = 3 if args.quick else 10
    if args.batch is None:
        args.batch = 2 if args.train else 1
    return args


def _ours(device: str, train: bool) -> torch.nn.Module:
    cfg = model_zoo.get_config(CONFIG)
    cfg.MODEL.DEVICE = device
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0
    cfg.TEST.DETECTIONS_PER_IMAGE = 100
    model = build_model(cfg)
    return model.train(train)


def _peer(device: str, train: bool) -> torch.nn.Module:
    # The zoo config's architecture: FrozenBN, stem and res2 frozen (FREEZE_AT=2), 80
    # classes + background, 800/1333 resizing (a no-op on 800x1333 inputs), and the fixed
    # 100-detection workload. Built by hand: without weights torchvision's builder would
    # switch to trainable BatchNorm everywhere.
    backbone = _resnet_fpn_extractor(resnet50(norm_layer=FrozenBatchNorm2d), trainable_layers=3)
    model = MaskRCNN(backbone, num_classes=81, box_score_thresh=0.0, box_detections_per_img=100)
    return model.to(device).train(train)


def _synthetic_targets(h: int, w: int, gen: torch.Generator) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    xy = torch.rand(NUM_GT, 2, generator=gen) * torch.tensor([w * 0.7, h * 0.7])
    wh = torch.rand(NUM_GT, 2, generator=gen) * torch.tensor([w * 0.25, h * 0.25]) + 16
    boxes = torch.cat([xy, xy + wh], dim=1)
    masks = torch.zeros(NUM_GT, h, w, dtype=torch.bool)
    for i, (x0, y0, x1, y1) in enumerate(boxes.round().long().tolist()):
        masks[i, y0:y1, x0:x1] = True
    labels = torch.randint(1, 81, (NUM_GT,), generator=gen)
    return boxes, labels, masks


def _inputs(args, device: str, size: Tuple[int, int]):
    gen = torch.Generator().manual_seed(0)
    h, w = size
    ours: List[Dict[str, object]] = []
    peer_images: List[torch.Tensor] = []
    peer_targets: List[Dict[str, torch.Tensor]] = []
    for _ in range(args.batch):
        image = torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=gen)
        record: Dict[str, object] = {"image": image.to(device), "height": h, "width": w}
        peer_images.append(image.flip(0).float().div(255).to(device))  # BGR uint8 -> RGB [0, 1]
        if args.train:
            boxes, labels, masks = _synthetic_targets(h, w, gen)
            inst = Instances((h, w))
            inst.gt_boxes = Boxes(boxes)
            inst.gt_classes = labels - 1  # detectron2 classes are 0-based, torchvision's 1-based
            inst.gt_masks = BitMasks(masks)
            record["instances"] = inst.to(device)
            peer_targets.append({"boxes": boxes.to(device), "labels": labels.to(device), "masks": masks.to(device)})
        ours.append(record)
    return ours, peer_images, peer_targets


def _calibrate_frozen_bn(model: torch.nn.Module, forward: Callable[[], object]) -> None:
    """Random weights behind identity FrozenBN make activations grow ~2x per residual
    block, which overflows fp16 and diverges in training. Like a trained network, give
    every FrozenBN the statistics of its input (one forward pass, layer by layer), on
    both sides alike."""

    def set_stats(module, inputs):
        x = inputs[0].float()
        module.running_mean.copy_(x.mean(dim=(0, 2, 3)))
        module.running_var.copy_(x.var(dim=(0, 2, 3)))

    hooks = [
        m.register_forward_pre_hook(set_stats) for m in model.modules() if type(m).__name__ == "FrozenBatchNorm2d"
    ]
    was_training = model.training
    with torch.no_grad():
        model.eval()
        forward()
    model.train(was_training)
    for h in hooks:
        h.remove()


def _infer_fn(model, call: Callable[[], object], device: str, amp: bool):
    dtype = torch.float16 if device == "cuda" else torch.bfloat16

    def run():
        with torch.inference_mode(), torch.autocast(device_type=device, dtype=dtype, enabled=amp):
            return call()

    return run


def _train_fn(model, call: Callable[[], Dict[str, torch.Tensor]], device: str, amp: bool):
    dtype = torch.float16 if device == "cuda" else torch.bfloat16
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)
    scaler = torch.amp.GradScaler(device, enabled=amp and device == "cuda")

    def run():
        # EventStorage: detectron2's heads log training statistics into it.
        with EventStorage(0), torch.autocast(device_type=device, dtype=dtype, enabled=amp):
            losses = call()
        loss = sum(losses.values())
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    return run


def _measure(fn, device: str, iters: int) -> Tuple[float, float]:
    """(median ms per iteration, peak GPU memory in GiB or nan on CPU)."""
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    ms = time_fn(fn, device=device, warmup=2, iters=iters)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
    return ms, peak


def main() -> None:
    args = _parse_args()
    device = args.device
    batched_matching.BATCH_ON_CPU = args.count_ops  # count what a GPU runs
    size = (256, 384) if args.quick else (800, 1333)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    ours_inputs, peer_images, peer_targets = _inputs(args, device, size)

    rows = []
    results = {}
    for name, build in (("detectron2-neo", _ours), ("torchvision", _peer)):
        model = build(device, args.train).to(memory_format=fmt)
        infer = (lambda m=model: m(ours_inputs)) if name == "detectron2-neo" else (lambda m=model: m(peer_images))
        _calibrate_frozen_bn(model, infer)
        if args.train:
            call = (lambda m=model: m(ours_inputs)) if name == "detectron2-neo" else (
                lambda m=model: m(peer_images, peer_targets)
            )
            fn = _train_fn(model, call, device, args.amp)
        else:
            fn = _infer_fn(model, infer, device, args.amp)
        params = sum(p.numel() for p in model.parameters())
        if args.count_ops:
            fn()  # warm-up: lazily built state is not counted
            counter = DispatchCounter()
            with counter:
                fn()
            results[name] = counter.ops
            rows.append([name, f"{params / 1e6:.2f}M", counter.ops, counter.syncs])
        else:
            ms, peak = _measure(fn, device, args.iters)
            results[name] = ms
            rows.append([name, f"{params / 1e6:.2f}M", ms, args.batch * 1000.0 / ms, peak])
        del model, fn
        if device == "cuda":
            torch.cuda.empty_cache()
    ratio = results["detectron2-neo"] / results["torchvision"]
    if args.count_ops:
        rows.append(["ratio ours/torchvision (ops)", "", ratio, ""])
    else:
        rows.append(["ratio ours/torchvision (time)", "", ratio, "", ""])

    mode = "training step" if args.train else "inference"
    print(f"Mask R-CNN R50-FPN {mode}, {size[0]}x{size[1]}, batch {args.batch}, amp={args.amp}, "
          f"channels_last={args.channels_last} on {describe_device(device)}")
    if args.count_ops:
        print_table(rows, ["model", "params", "aten ops / iter", "host syncs / iter"])
    else:
        print_table(rows, ["model", "params", "ms / iter", "images / s", "peak GiB"])


if __name__ == "__main__":
    main()
