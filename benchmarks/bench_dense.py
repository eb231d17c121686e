"""Dense detectors, end-to-end inference: our RetinaNet / FCOS (R50-FPN) vs torchvision's
retinanet_resnet50_fpn / fcos_resnet50_fpn with random weights and the same settings.

Both sides: frozen BatchNorm, stride on the 3x3 conv (ours via
MODEL.RESNETS.STRIDE_IN_1X1 = False), 80 classes, 9 anchors (RetinaNet) or one point
(FCOS) per position on P3-P7, 4-conv heads (GN for FCOS), top-1000 candidates per level,
per-class NMS, 100 detections per image; RetinaNet score threshold 0.05 / NMS 0.5, FCOS
0.2 / 0.6. The images are already at the test size, so torchvision's transform does not
resize (min_size/max_size set to the image size). What differs by design: upstream's
RetinaNet computes P6 from C5 (2048 channels; torchvision: from P5), and the
pre-/post-processing code. With random weights almost nothing passes the score
threshold, so a second row per model sets the threshold to 0 on both sides, which
makes the decoding + NMS path do full work (1000 candidates on each of 5 levels).
Sizes: 800x1333, batch 2 (Mask R-CNN's test size); --quick uses 128x192, batch 1.

Usage: python benchmarks/bench_dense.py [--device cuda] [--quick] [--iters N] [--models retinanet,fcos]
       [--threads N] [--clock process]
"""
import argparse
import os
import statistics
import sys
import time
from typing import Callable, Dict, List, Tuple

import torch
from torchvision.models import resnet50
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.models.detection.fcos import FCOS as TvFCOS
from torchvision.models.detection.retinanet import RetinaNet as TvRetinaNet
from torchvision.ops import FrozenBatchNorm2d as TvFrozenBN
from torchvision.ops.feature_pyramid_network import LastLevelP6P7 as TvLastLevelP6P7

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import describe_device, print_table, time_fn  # noqa: E402

from detectron2.config import get_cfg  # noqa: E402
from detectron2.layers import ShapeSpec  # noqa: E402
from detectron2.modeling import FCOS, build_model  # noqa: E402
from detectron2.modeling.backbone.fpn import FPN, LastLevelP6P7  # noqa: E402
from detectron2.modeling.backbone.resnet import build_resnet_backbone  # noqa: E402
from detectron2.modeling.meta_arch.fcos import FCOSHead  # noqa: E402

NUM_CLASSES = 80


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="small images and few iterations (smoke test)")
    parser.add_argument("--iters", type=int, default=None, help="timed iterations per case")
    parser.add_argument("--models", default="retinanet,fcos", help="comma-separated subset of retinanet,fcos")
    parser.add_argument(
        "--threads", type=int, default=None,
        help="CPU threads (torch.set_num_threads); 1 avoids OpenMP spin-wait collapse on a loaded machine",
    )
    parser.add_argument(
        "--clock", default="wall", choices=["wall", "process"],
        help="CPU only: 'process' times with the process CPU clock, which a busy shared machine does not inflate "
        "(use with --threads 1)",
    )
    args = parser.parse_args()
    if args.iters is None:
        args.iters = 2 if args.quick else 5
    if args.clock == "process" and args.device != "cpu":
        parser.error("--clock process is for --device cpu")
    return args


def _process_time_ms(fn: Callable[[], object], warmup: int, iters: int) -> float:
    """Median process CPU time of fn() in ms (single-threaded runs on a shared machine)."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(iters):
        t0 = time.process_time()
        fn()
        samples.append((time.process_time() - t0) * 1e3)
    return statistics.median(samples)


def _r50_cfg(device: str):
    cfg = get_cfg()
    cfg.MODEL.DEVICE = device
    cfg.MODEL.META_ARCHITECTURE = "RetinaNet"
    cfg.MODEL.BACKBONE.NAME = "build_retinanet_resnet_fpn_backbone"
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res3", "res4", "res5"]
    cfg.MODEL.RESNETS.STRIDE_IN_1X1 = False
    cfg.MODEL.FPN.IN_FEATURES = ["res3", "res4", "res5"]
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[x, x * 2 ** (1.0 / 3), x * 2 ** (2.0 / 3)] for x in [32, 64, 128, 256, 512]]
    cfg.MODEL.RETINANET.NUM_CLASSES = NUM_CLASSES
    return cfg


def _ours_retinanet(device: str) -> torch.nn.Module:
    return build_model(_r50_cfg(device))


def _ours_fcos(device: str) -> torch.nn.Module:
    # Upstream's fcos_R_50_FPN_1x LazyConfig: P6/P7 from P5, GN head of 4 convs.
    cfg = _r50_cfg(device)
    bottom_up = build_resnet_backbone(cfg, ShapeSpec(channels=3))
    backbone = FPN(
        bottom_up=bottom_up,
        in_features=["res3", "res4", "res5"],
        out_channels=256,
        top_block=LastLevelP6P7(256, 256, in_feature="p5"),
    )
    shapes = [backbone.output_shape()[f] for f in ("p3", "p4", "p5", "p6", "p7")]
    head = FCOSHead(input_shape=shapes, conv_dims=[256] * 4, num_classes=NUM_CLASSES, norm="GN", prior_prob=0.01)
    model = FCOS(
        backbone=backbone,
        head=head,
        head_in_features=["p3", "p4", "p5", "p6", "p7"],
        num_classes=NUM_CLASSES,
        pixel_mean=cfg.MODEL.PIXEL_MEAN,
        pixel_std=cfg.MODEL.PIXEL_STD,
    )
    return model.to(device)


def _tv_backbone() -> torch.nn.Module:
    body = resnet50(norm_layer=TvFrozenBN)
    return _resnet_fpn_extractor(body, 5, returned_layers=[2, 3, 4], extra_blocks=TvLastLevelP6P7(256, 256))


def _peer_retinanet(size: Tuple[int, int]) -> torch.nn.Module:
    return TvRetinaNet(
        _tv_backbone(), NUM_CLASSES, min_size=size[0], max_size=size[1], detections_per_img=100,
        score_thresh=0.05, nms_thresh=0.5, topk_candidates=1000,
    )


def _peer_fcos(size: Tuple[int, int]) -> torch.nn.Module:
    return TvFCOS(
        _tv_backbone(), NUM_CLASSES, min_size=size[0], max_size=size[1], detections_per_img=100,
        score_thresh=0.2, nms_thresh=0.6, topk_candidates=1000,
    )


def _set_thresh(ours: torch.nn.Module, peer: torch.nn.Module, thresh: float) -> None:
    ours.test_score_thresh = thresh
    peer.score_thresh = thresh


def _runners(ours, peer, images: List[torch.Tensor]) -> Tuple[Callable, Callable]:
    ours_inputs = [{"image": x * 255} for x in images]

    def run_ours():
        with torch.inference_mode():
            return [r["instances"] for r in ours(ours_inputs)]

    def run_peer():
        with torch.inference_mode():
            return peer(images)

    return run_ours, run_peer


def main() -> None:
    args = _parse_args()
    device = args.device
    if args.threads:
        torch.set_num_threads(args.threads)
    size = (128, 192) if args.quick else (800, 1333)
    batch = 1 if args.quick else 2
    print(f"device: {describe_device(device)}; images {batch}x3x{size[0]}x{size[1]}; clock {args.clock}\n")

    builders: Dict[str, Tuple[Callable, Callable, float]] = {
        "RetinaNet": (_ours_retinanet, _peer_retinanet, 0.05),
        "FCOS": (_ours_fcos, _peer_fcos, 0.2),
    }
    wanted = {m.strip().lower() for m in args.models.split(",")}
    torch.manual_seed(0)
    images = [torch.rand(3, *size, device=device) for _ in range(batch)]
    warmup = 1 if args.quick or device == "cpu" else 3

    rows = []
    for name, (build_ours, build_peer, default_thresh) in builders.items():
        if name.lower() not in wanted:
            continue
        ours = build_ours(device).eval()
        peer = build_peer(size).eval().to(device)
        for thresh in (default_thresh, 0.0):
            _set_thresh(ours, peer, thresh)
            run_ours, run_peer = _runners(ours, peer, images)
            # The counting call doubles as the first warm-up run.
            n_ours = sum(len(r) for r in run_ours())
            n_peer = sum(len(r["boxes"]) for r in run_peer())
            if args.clock == "process":
                peer_ms = _process_time_ms(run_peer, warmup - 1, args.iters)
                ours_ms = _process_time_ms(run_ours, warmup - 1, args.iters)
            else:
                peer_ms = time_fn(run_peer, device=device, warmup=warmup - 1, iters=args.iters)
                ours_ms = time_fn(run_ours, device=device, warmup=warmup - 1, iters=args.iters)
            rows.append((f"{name}, score_thresh {thresh}", f"{n_ours}/{n_peer}", ours_ms, peer_ms, ours_ms / peer_ms))
        del ours, peer
    print_table(rows, ["case", "detections ours/peer", "ours ms", "peer ms", "ours/peer"])


if __name__ == "__main__":
    main()
