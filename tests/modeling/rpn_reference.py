"""A plain-PyTorch reference of find_top_rpn_proposals, written for clarity: one image
and one level at a time, a full sort instead of top-k, torchvision's NMS per level, and
a final sort of the survivors. Used by the tests (parity) and benchmarks/bench_rpn.py."""
from typing import List, Tuple

import torch
from torchvision.ops import nms


def _clip(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    x0, y0, x1, y1 = boxes.unbind(dim=1)
    return torch.stack(
        (x0.clamp(0, width), y0.clamp(0, height), x1.clamp(0, width), y1.clamp(0, height)), dim=1
    )


def _one_level(boxes, scores, image_size, nms_thresh, pre_nms_topk, min_box_size, training):
    scores, order = scores.sort(descending=True)
    boxes = boxes[order[:pre_nms_topk]]
    scores = scores[:pre_nms_topk]
    finite = torch.isfinite(boxes).all(dim=1) & torch.isfinite(scores)
    if training and not bool(finite.all()):
        raise FloatingPointError("non-finite proposals")
    boxes = _clip(boxes[finite], *image_size)
    scores = scores[finite]
    big = ((boxes[:, 2] - boxes[:, 0]) > min_box_size) & ((boxes[:, 3] - boxes[:, 1]) > min_box_size)
    boxes, scores = boxes[big], scores[big]
    keep = nms(boxes, scores, nms_thresh)
    return boxes[keep], scores[keep]


def reference_find_top_rpn_proposals(
    proposals: List[torch.Tensor],
    pred_objectness_logits: List[torch.Tensor],
    image_sizes: List[Tuple[int, int]],
    nms_thresh: float,
    pre_nms_topk: int,
    post_nms_topk: int,
    min_box_size: float,
    training: bool,
) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """Per image, (boxes (K, 4), scores (K,)) sorted by decreasing score."""
    results = []
    for n, image_size in enumerate(image_sizes):
        kept = [
            _one_level(p[n], s[n], image_size, nms_thresh, pre_nms_topk, min_box_size, training)
            for p, s in zip(proposals, pred_objectness_logits)
        ]
        boxes = torch.cat([b for b, _ in kept])
        scores = torch.cat([s for _, s in kept])
        order = scores.argsort(descending=True, stable=True)[:post_nms_topk]
        results.append((boxes[order], scores[order]))
    return results
