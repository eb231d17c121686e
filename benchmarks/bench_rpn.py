"""RPN at Mask R-CNN sizes: our find_top_rpn_proposals (batched top-k over images, one
batched NMS across levels per image) against a plain-PyTorch reference of it (one image
and one level at a time, full sort, torchvision NMS per level; tests/modeling/rpn_reference.py),
and the whole RPN forward (head, anchors, decoding, selection) with either selection.

Inputs: the FPN features (p2-p6, 256 channels) of an 800x1333 image padded to 800x1344,
batch 2; anchors 32-512 with ratios 0.5/1/2, as in Base-RCNN-FPN. Proposals are anchors
moved by small random deltas, scores random. Inference mode; pre-NMS top-k 1000 (test)
and 2000 (train), post-NMS 1000. --quick uses a 128x192 image.

Usage: python benchmarks/bench_rpn.py [--device cuda] [--quick]
"""
import os
import statistics
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "benchmarks"), os.path.join(ROOT, "src"), os.path.join(ROOT, "tests", "modeling")]
from common import describe_device, parse_args, print_table, time_fn  # noqa: E402
from rpn_reference import reference_find_top_rpn_proposals  # noqa: E402

from detectron2.config import get_cfg  # noqa: E402
from detectron2.layers import ShapeSpec  # noqa: E402
from detectron2.modeling.proposal_generator import RPN  # noqa: E402
from detectron2.modeling.proposal_generator.proposal_utils import find_top_rpn_proposals  # noqa: E402
from detectron2.structures import ImageList  # noqa: E402

LEVELS = ["p2", "p3", "p4", "p5", "p6"]
STRIDES = [4, 8, 16, 32, 64]


def _build_rpn(device: str) -> RPN:
    cfg = get_cfg()
    cfg.MODEL.RPN.IN_FEATURES = LEVELS
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[32], [64], [128], [256], [512]]
    cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS = [[0.5, 1.0, 2.0]]
    cfg.MODEL.RPN.PRE_NMS_TOPK_TEST = 1000
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 1000
    shapes = {name: ShapeSpec(channels=256, stride=s) for name, s in zip(LEVELS, STRIDES)}
    return RPN(cfg, shapes).to(device).eval()


def _features(height: int, width: int, batch: int, device: str):
    g = torch.Generator(device=device).manual_seed(0)
    return {
        name: torch.randn(batch, 256, -(-height // s), -(-width // s), generator=g, device=device)
        for name, s in zip(LEVELS, STRIDES)
    }


def _dense_predictions(rpn: RPN, features, device: str):
    """Decoded proposals and logits per level, as the RPN head would give them."""
    feats = [features[f] for f in LEVELS]
    anchors = rpn.anchor_generator(feats)
    g = torch.Generator(device=device).manual_seed(1)
    batch = feats[0].shape[0]
    deltas = [0.1 * torch.randn(batch, len(a), 4, generator=g, device=device) for a in anchors]
    logits = [torch.randn(batch, len(a), generator=g, device=device) for a in anchors]
    return rpn._decode_proposals(anchors, deltas), logits


def _reference_forward(rpn: RPN, images: ImageList, features):
    """The RPN forward with the reference selection in place of ours."""
    feats = [features[f] for f in rpn.in_features]
    anchors = rpn.anchor_generator(feats)
    logits, deltas = rpn._flatten_predictions(*rpn.rpn_head(feats))
    proposals = rpn._decode_proposals(anchors, deltas)
    return reference_find_top_rpn_proposals(
        proposals, logits, images.image_sizes, rpn.nms_thresh, 1000, 1000, rpn.min_box_size, False
    )


def _alternating(ours, ref, device: str, iters: int):
    """Median ms of each, timed in alternation so that load changes on a shared machine
    hit both sides alike."""
    for fn in (ours, ref):
        time_fn(fn, device, warmup=1, iters=1)
    samples = [(time_fn(ours, device, warmup=0, iters=1), time_fn(ref, device, warmup=0, iters=1)) for _ in range(iters)]
    return statistics.median(a for a, _ in samples), statistics.median(b for _, b in samples)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    device = args.device
    height, width = (128, 192) if args.quick else (800, 1344)
    batch = 2
    note = "quick" if args.quick else "800x1333 padded to 32"
    print(f"device: {describe_device(device)}; image {height}x{width} ({note}), batch {batch}\n")
    torch.manual_seed(0)
    rpn = _build_rpn(device)
    features = _features(height, width, batch, device)
    images = ImageList(torch.zeros(batch, 3, height, width, device=device), [(height, min(width, 1333))] * batch)
    proposals, logits = _dense_predictions(rpn, features, device)
    sizes = images.image_sizes

    rows = []
    for label, pre_topk in (("test", 1000), ("train", 2000)):
        ours, ref = _alternating(
            lambda: find_top_rpn_proposals(proposals, logits, sizes, 0.7, pre_topk, 1000, 0.0, False),
            lambda: reference_find_top_rpn_proposals(proposals, logits, sizes, 0.7, pre_topk, 1000, 0.0, False),
            device, args.iters,
        )
        rows.append([f"find_top_rpn_proposals ({label}: pre {pre_topk}, post 1000)", ours, ref, ours / ref])

    iters = max(3, args.iters // 4) if device == "cpu" else args.iters
    with torch.no_grad():
        ours, ref = _alternating(lambda: rpn(images, features), lambda: _reference_forward(rpn, images, features), device, iters)
    rows.append(["RPN forward (head + anchors + decode + selection, test)", ours, ref, ours / ref])
    print_table(rows, ["case", "ours ms", "reference ms", "ours/reference"])


if __name__ == "__main__":
    main()
