"""StandardROIHeads inference (Mask R-CNN R50-FPN heads: 2x1024 FC box head, 80 classes,
4-conv mask head) vs a plain-PyTorch reference of the box-inference path, for 1000
proposals per image on FPN features (p2-p5, 256 channels) of 800x1333 images, batch 2.

    python benchmarks/bench_roi_heads.py [--device cuda] [--quick]

The heads are randomly initialized; the classifier is made confident enough that a
realistic number of (box, class) candidates pass the 0.05 score threshold.
"""
import math
import os
import sys
from typing import Dict, List, Tuple

import torch
import torchvision
from torch.nn import functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
from common import describe_device, parse_args, print_table, time_fn  # noqa: E402

from detectron2.config import get_cfg  # noqa: E402
from detectron2.layers import ShapeSpec  # noqa: E402
from detectron2.modeling import build_roi_heads  # noqa: E402
from detectron2.structures import Boxes, Instances  # noqa: E402

STRIDES = {"p2": 4, "p3": 8, "p4": 16, "p5": 32}


def build_heads(mask_on: bool, device: str, detections_per_image: int):
    cfg = get_cfg()
    cfg.MODEL.MASK_ON = mask_on
    cfg.TEST.DETECTIONS_PER_IMAGE = detections_per_image
    cfg.MODEL.ROI_HEADS.NAME = "StandardROIHeads"
    cfg.MODEL.ROI_HEADS.IN_FEATURES = list(STRIDES)
    cfg.MODEL.ROI_BOX_HEAD.NAME = "FastRCNNConvFCHead"
    cfg.MODEL.ROI_BOX_HEAD.NUM_FC = 2
    cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 7
    cfg.MODEL.ROI_MASK_HEAD.NUM_CONV = 4
    torch.manual_seed(0)
    heads = build_roi_heads(cfg, {k: ShapeSpec(channels=256, stride=s) for k, s in STRIDES.items()})
    with torch.no_grad():  # a confident classifier, so that detections survive the threshold
        heads.box_predictor.cls_score.weight.normal_(0, 0.05)
        heads.box_predictor.cls_score.bias.normal_(0, 1.0)
        heads.box_predictor.bbox_pred.weight.normal_(0, 0.01)
    return heads.to(device).eval()


def make_inputs(batch: int, h: int, w: int, num_props: int, device: str):
    g = torch.Generator().manual_seed(0)
    ph, pw = int(math.ceil(h / 32) * 32), int(math.ceil(w / 32) * 32)  # size_divisibility 32
    features = {k: torch.randn(batch, 256, ph // s, pw // s, generator=g).to(device) for k, s in STRIDES.items()}
    proposals = []
    for _ in range(batch):
        xy = torch.rand(num_props, 2, generator=g) * torch.tensor([w * 0.9, h * 0.9])
        wh = 8 + torch.rand(num_props, 2, generator=g) ** 2 * torch.tensor([w * 0.5, h * 0.5])
        boxes = torch.cat([xy, torch.min(xy + wh, torch.tensor([w - 1.0, h - 1.0]))], dim=1)
        inst = Instances((h, w))
        inst.proposal_boxes = Boxes(boxes.to(device))
        inst.objectness_logits = torch.randn(num_props, generator=g).to(device)
        proposals.append(inst)
    return features, proposals


def reference_box_inference(
    heads, features: Dict[str, torch.Tensor], boxes: List[torch.Tensor], image_sizes: List[Tuple[int, int]]
):
    """The box path written directly with torch / torchvision ops: FPN level
    assignment, roi_align per level, two FC layers, softmax, box decoding, clipping,
    score threshold, per-class NMS and top-k."""
    head, pred = heads.box_head, heads.box_predictor
    rois = torch.cat([torch.cat([torch.full((len(b), 1), float(i), device=b.device), b], 1) for i, b in enumerate(boxes)])
    all_boxes = rois[:, 1:]
    size = torch.sqrt((all_boxes[:, 2] - all_boxes[:, 0]) * (all_boxes[:, 3] - all_boxes[:, 1]))
    level = torch.clamp(torch.floor(4 + torch.log2(size / 224 + 1e-8)), 2, 5).long() - 2
    pooled = rois.new_zeros(len(rois), 256, 7, 7)
    for i, (name, stride) in enumerate(STRIDES.items()):
        idx = torch.nonzero(level == i).squeeze(1)
        pooled[idx] = torchvision.ops.roi_align(features[name], rois[idx], 7, 1.0 / stride, 0, aligned=True)
    x = F.relu(F.linear(pooled.flatten(1), head.fc1.weight, head.fc1.bias))
    x = F.relu(F.linear(x, head.fc2.weight, head.fc2.bias))
    probs = F.softmax(F.linear(x, pred.cls_score.weight, pred.cls_score.bias), dim=1)
    deltas = F.linear(x, pred.bbox_pred.weight, pred.bbox_pred.bias).view(len(rois), -1, 4)

    widths = (all_boxes[:, 2] - all_boxes[:, 0])[:, None]
    heights = (all_boxes[:, 3] - all_boxes[:, 1])[:, None]
    cx = all_boxes[:, 0, None] + 0.5 * widths
    cy = all_boxes[:, 1, None] + 0.5 * heights
    dx, dy = deltas[..., 0] / 10, deltas[..., 1] / 10
    dw = torch.clamp(deltas[..., 2] / 5, max=math.log(1000 / 16))
    dh = torch.clamp(deltas[..., 3] / 5, max=math.log(1000 / 16))
    pcx, pcy = dx * widths + cx, dy * heights + cy
    pw, ph = torch.exp(dw) * widths, torch.exp(dh) * heights
    decoded = torch.stack([pcx - pw / 2, pcy - ph / 2, pcx + pw / 2, pcy + ph / 2], dim=-1)  # (R, K, 4)

    results = []
    start = 0
    for b, (h, w) in zip(boxes, image_sizes):
        dec = decoded[start : start + len(b)]
        scores = probs[start : start + len(b), :-1]
        start += len(b)
        dec = torch.stack([dec[..., 0].clamp(0, w), dec[..., 1].clamp(0, h), dec[..., 2].clamp(0, w), dec[..., 3].clamp(0, h)], -1)
        keep_mask = scores > pred.test_score_thresh
        cand = keep_mask.nonzero()
        cand_boxes, cand_scores = dec[keep_mask], scores[keep_mask]
        keep = torchvision.ops.batched_nms(cand_boxes, cand_scores, cand[:, 1], pred.test_nms_thresh)
        keep = keep[: pred.test_topk_per_image]
        results.append((cand_boxes[keep], cand_scores[keep], cand[keep, 1], len(cand)))
    return results


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    # --quick keeps the heads' sizes but shrinks the inputs and the mask branch's work.
    batch, (h, w), num_props, topk = (2, (128, 160), 64, 10) if args.quick else (2, (800, 1333), 1000, 100)
    print(f"StandardROIHeads inference on {describe_device(args.device)}")
    print(f"batch {batch}, image {h}x{w}, {num_props} proposals/image, FPN p2-p5 x 256 channels\n")

    box_heads, mask_heads = build_heads(False, args.device, topk), build_heads(True, args.device, topk)
    features, proposals = make_inputs(batch, h, w, num_props, args.device)
    boxes = [p.proposal_boxes.tensor for p in proposals]
    sizes = [p.image_size for p in proposals]

    with torch.no_grad():
        ours_out, _ = box_heads(None, features, proposals)
        ref_out = reference_box_inference(box_heads, features, boxes, sizes)
        for o, r in zip(ours_out, ref_out):
            if len(o) != len(r[0]) or not torch.allclose(o.pred_boxes.tensor, r[0], atol=1e-3):
                raise SystemExit("ours and the reference disagree on the detections")
        detections = sum(len(o) for o in ours_out)
        candidates = sum(r[3] for r in ref_out)

        ours = time_fn(lambda: box_heads(None, features, proposals), args.device, iters=args.iters)
        ref = time_fn(lambda: reference_box_inference(box_heads, features, boxes, sizes), args.device, iters=args.iters)
        full = time_fn(lambda: mask_heads(None, features, proposals), args.device, iters=args.iters)

    print(f"{candidates} (box, class) candidates above the score threshold, {detections} detections\n")
    rows = [
        ("box inference", ours, ref, ours / ref),
        ("box + mask inference", full, "-", "-"),
    ]
    print_table(rows, ["path", "ours (ms)", "plain PyTorch (ms)", "ours/reference"])


if __name__ == "__main__":
    main()
