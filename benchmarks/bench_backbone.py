"""R50-FPN backbone forward: ours (build_resnet_fpn_backbone) vs torchvision's resnet50 +
FeaturePyramidNetwork with the same architecture.

Both sides: frozen BatchNorm, stride on the 3x3 conv (torchvision's placement; ours via
MODEL.RESNETS.STRIDE_IN_1X1 = False, so the FLOPs are identical), FPN on res2-res5 with
256 channels and a max-pooled P6; inference mode. A second row times our default config
(stride in the 1x1 conv, as the MSRA checkpoints of the model zoo), which is cheaper.
Sizes: 800x1333 (Mask R-CNN's test size), batch 1 and 2; --quick uses 128x192.

Usage: python benchmarks/bench_backbone.py [--device cuda] [--quick] [--channels-last] [--amp]
"""
import argparse
import os
import sys

import torch
from torchvision.models import resnet50
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.ops import FrozenBatchNorm2d as TvFrozenBN
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool as TvLastLevelMaxPool

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import describe_device, print_table, time_fn  # noqa: E402

from detectron2.config import get_cfg  # noqa: E402
from detectron2.modeling import build_backbone  # noqa: E402


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="small images and few iterations (smoke test)")
    parser.add_argument("--iters", type=int, default=None, help="timed iterations per case")
    parser.add_argument("--channels-last", action="store_true", help="NHWC weights and inputs on both sides")
    parser.add_argument("--amp", action="store_true", help="autocast (fp16 on CUDA, bf16 on CPU) on both sides")
    args = parser.parse_args()
    if args.iters is None:
        args.iters = 3 if args.quick else 10
    return args


def _ours(stride_in_1x1: bool) -> torch.nn.Module:
    cfg = get_cfg()
    cfg.MODEL.BACKBONE.NAME = "build_resnet_fpn_backbone"
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.FPN.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.RESNETS.STRIDE_IN_1X1 = stride_in_1x1
    return build_backbone(cfg)


def _peer() -> torch.nn.Module:
    body = resnet50(norm_layer=TvFrozenBN)
    return BackboneWithFPN(
        body,
        return_layers={"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"},
        in_channels_list=[256, 512, 1024, 2048],
        out_channels=256,
        extra_blocks=TvLastLevelMaxPool(),
    )


def _count(model: torch.nn.Module) -> int:
    return sum(t.numel() for t in list(model.parameters()) + list(model.buffers()) if t.dim() > 0)


def _runner(model, x, device: str, amp: bool):
    dtype = torch.float16 if device == "cuda" else torch.bfloat16

    def run():
        with torch.inference_mode(), torch.autocast(device_type=device, dtype=dtype, enabled=amp):
            return model(x)

    return run


def main() -> None:
    args = _parse_args()
    device = args.device
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    size = (128, 192) if args.quick else (800, 1344)  # 1333 padded to FPN's divisibility 32
    batches = (1,) if args.quick else (1, 2)
    print(f"device: {describe_device(device)}; channels_last={args.channels_last} amp={args.amp}\n")

    torch.manual_seed(0)
    models = {
        "ours (stride in 3x3)": _ours(False),
        "ours (stride in 1x1, default)": _ours(True),
        "peer": _peer(),
    }
    counts = {name: _count(m) for name, m in models.items()}
    assert counts["ours (stride in 3x3)"] == counts["peer"], counts  # same architecture
    for m in models.values():
        m.eval().to(device=device, memory_format=memory_format)

    rows = []
    for batch in batches:
        x = torch.randn(batch, 3, *size, device=device).contiguous(memory_format=memory_format)
        peer_ms = time_fn(_runner(models["peer"], x, device, args.amp), device=device, warmup=1 if args.quick else 2, iters=args.iters)
        for name in ("ours (stride in 3x3)", "ours (stride in 1x1, default)"):
            ms = time_fn(_runner(models[name], x, device, args.amp), device=device, warmup=1 if args.quick else 2, iters=args.iters)
            rows.append((f"{name}, {batch}x3x{size[0]}x{size[1]}", ms, peer_ms, ms / peer_ms))
    print_table(rows, ["case", "ours ms", "peer ms", "ours/peer"])


if __name__ == "__main__":
    main()
