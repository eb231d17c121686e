"""Training-time labelling of anchors (RPN) and proposals (ROI heads): the batched path
(match_images + subsample_labels_batched) vs the per-image loop that upstream runs (the
same module, with its matcher's class changed so that it takes the loop), on an
800x1333 R50-FPN anchor set and COCO-like ground truth (1-40 boxes an image).

    python benchmarks/bench_matching.py [--device cuda] [--quick]

Both paths give identical labels and draws (tests/modeling/test_batched_matching.py);
besides the time it reports the aten ops dispatched and the host syncs (nonzero, item)
per call: the host-side cost that a GPU training step waits on. The batched path is
forced here on the CPU too, where the library takes the loop (it is faster there).
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
from common import describe_device, parse_args, print_table, time_fn  # noqa: E402

from detectron2.config import get_cfg  # noqa: E402
from detectron2.layers import ShapeSpec  # noqa: E402
from detectron2.modeling import batched_matching, build_roi_heads  # noqa: E402
from detectron2.modeling.matcher import Matcher  # noqa: E402
from detectron2.modeling.proposal_generator import RPN  # noqa: E402
from detectron2.structures import Boxes, Instances  # noqa: E402
from detectron2.utils.events import EventStorage  # noqa: E402
from detectron2.utils.testing import DispatchCounter  # noqa: E402

STRIDES = {"p2": 4, "p3": 8, "p4": 16, "p5": 32, "p6": 64}


class LoopMatcher(Matcher):
    """A Matcher by behaviour but not by type: the RPN and ROI heads take their loops."""


def random_boxes(g, n, h, w, min_size=8.0):
    xy = torch.rand(n, 2, generator=g) * torch.tensor([w * 0.9, h * 0.9])
    wh = min_size + torch.rand(n, 2, generator=g) ** 2 * torch.tensor([w * 0.5, h * 0.5])
    return torch.cat([xy, torch.min(xy + wh, torch.tensor([w - 1.0, h - 1.0]))], dim=1)


def make_batch(batch, h, w, num_props, device):
    g = torch.Generator().manual_seed(0)
    targets, proposals = [], []
    for _ in range(batch):
        k = int(torch.randint(1, 41, (1,), generator=g))
        gt = Instances((h, w), gt_boxes=Boxes(random_boxes(g, k, h, w).to(device)))
        gt.gt_classes = torch.randint(0, 80, (k,), generator=g).to(device)
        targets.append(gt)
        props = Instances((h, w), proposal_boxes=Boxes(random_boxes(g, num_props, h, w).to(device)))
        props.objectness_logits = torch.randn(num_props, generator=g).to(device)
        proposals.append(props)
    return targets, proposals


def build(device, h, w):
    cfg = get_cfg()
    cfg.MODEL.RPN.IN_FEATURES = list(STRIDES)
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[32], [64], [128], [256], [512]]
    cfg.MODEL.ROI_HEADS.NAME = "StandardROIHeads"
    cfg.MODEL.ROI_HEADS.IN_FEATURES = ["p2", "p3", "p4", "p5"]
    cfg.MODEL.ROI_BOX_HEAD.NAME = "FastRCNNConvFCHead"
    cfg.MODEL.ROI_BOX_HEAD.NUM_FC = 2
    shapes = {k: ShapeSpec(channels=256, stride=s) for k, s in STRIDES.items()}
    torch.manual_seed(0)
    rpn = RPN(cfg, shapes).to(device).train()
    heads = build_roi_heads(cfg, shapes).to(device).train()
    ph, pw = (h + 31) // 32 * 32, (w + 31) // 32 * 32
    feats = [torch.zeros(1, 1, ph // s, pw // s, device=device) for s in STRIDES.values()]
    return rpn, heads, rpn.anchor_generator(feats)


def measure(fn, device, iters):
    counter = DispatchCounter()
    with counter:
        fn()
    return time_fn(fn, device, warmup=2, iters=iters), counter.ops, counter.syncs


def main():
    args = parse_args(__doc__.splitlines()[0])
    batched_matching.BATCH_ON_CPU = True
    h, w = (200, 333) if args.quick else (800, 1333)
    rpn, heads, anchors = build(args.device, h, w)
    print(f"# labelling, {describe_device(args.device)}, {sum(len(a) for a in anchors)} anchors\n")
    rows = []
    for batch in [2] if args.quick else [8, 16]:
        targets, proposals = make_batch(batch, h, w, 1000, args.device)
        cases = {
            "RPN anchors": (rpn, lambda: rpn.label_and_sample_anchors(anchors, targets)),
            "ROI proposals": (heads, lambda: heads.label_and_sample_proposals(proposals, targets)),
        }
        for name, (module, fn) in cases.items():
            matcher = module.anchor_matcher if module is rpn else module.proposal_matcher
            with EventStorage():
                ours = measure(fn, args.device, args.iters)
                matcher.__class__ = LoopMatcher
                loop = measure(fn, args.device, args.iters)
                matcher.__class__ = Matcher
            rows.append([name, batch, ours[0], loop[0], ours[0] / loop[0], ours[1], loop[1], ours[2], loop[2]])
    headers = ["stage", "batch", "batched ms", "loop ms", "ratio", "ops", "loop ops", "syncs", "loop syncs"]
    print_table(rows, headers)


if __name__ == "__main__":
    main()
