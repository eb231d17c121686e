"""Match the boxes of several images to their ground truth in a few batched steps.

The per-image loop (``matcher(quality_fn(gt_i, boxes_i))`` for each image) costs some
30 small ops and a host sync per image; here images are padded into groups and matched
together (Matcher.match_batch), with results equal to the loop's, element for element.
Images are grouped by their number of gt boxes, so that little of a group is padding,
and groups are capped in size so that the (images, gt, boxes) quality tensor never
grows much past what the loop's largest image needed.
"""
from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch
from torch.nn.utils.rnn import pad_sequence

from detectron2.structures import Boxes, pairwise_iou
from detectron2.structures.boxes import batched_pairwise_iou
from detectron2.utils.memory import retry_if_cuda_oom

from .matcher import Matcher

__all__ = ["batch_matching_on", "row_mask", "pad_tensors", "match_images"]

# Quality elements (images x gt x boxes) matched at once: 256 MB of float32, about
# 1 GB with the IoU's temporaries; a single bigger image still goes alone.
MAX_GROUP_ELEMENTS = 1 << 26
# Padding a group may always hold (microseconds of device time), however little its
# real work: below this, another group's ops would cost more than the padding.
MIN_GROUP_WASTE = 1 << 20
# On the CPU the per-image loop is faster (measured 2.4x on the RPN's 268k anchors,
# benchmarks/bench_matching.py): no device to wait for, and the broadcast 3-D
# elementwise kernels are slower there. Tests set this to run the batched path on CPU.
BATCH_ON_CPU = False


def batch_matching_on(device: torch.device) -> bool:
    """Whether the RPN and ROI heads match a batch at once on this device: on devices
    that run asynchronously to the host (CUDA), where the loop's ops and syncs cost."""
    return device.type != "cpu" or BATCH_ON_CPU


def row_mask(counts: Sequence[int], width: int, device: torch.device) -> torch.Tensor:
    """(B, width) bool mask, True in the first counts[i] columns of row i; made without
    waiting for the device (a non-blocking copy of the counts)."""
    counts = torch.as_tensor(list(counts)).to(device, non_blocking=True)
    return torch.arange(width, device=device) < counts[:, None]


def pad_tensors(tensors: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Stack (N_i, ...) tensors into a zero-padded (B, max N_i, ...) tensor, and its
    (B, max N_i) row_mask of the real rows."""
    padded = pad_sequence(list(tensors), batch_first=True)
    return padded, row_mask([len(t) for t in tensors], padded.shape[1], padded.device)


def _groups(num_gt: List[int], num_boxes: List[int], max_elements: int, max_waste: int) -> List[List[int]]:
    """Images grouped in order of their gt count, so that little is padding: a group's
    padded quality tensor stays within ``max_elements`` and its padding within the
    larger of its real elements and ``max_waste`` (a group that cannot grow stays a
    single image). Each group costs a fixed few ops; each padded element a little
    device time."""
    groups: List[List[int]] = []
    group: List[int] = []
    rows = cols = real = 0
    for i in sorted(range(len(num_gt)), key=lambda j: num_gt[j]):
        new_rows, new_cols = max(rows, num_gt[i]), max(cols, num_boxes[i])
        new_real = real + num_gt[i] * num_boxes[i]
        padded = (len(group) + 1) * new_rows * new_cols
        if group and (padded > max_elements or padded - new_real > max(new_real, max_waste)):
            groups.append(group)
            group, new_rows, new_cols, new_real = [], num_gt[i], num_boxes[i], num_gt[i] * num_boxes[i]
        group.append(i)
        rows, cols, real = new_rows, new_cols, new_real
    groups.append(group)
    return groups


def _group_quality(
    quality_fn: Callable, gt_boxes: List[Boxes], boxes: Union[Boxes, List[Boxes]], shared: bool
) -> Tuple[torch.Tensor, torch.Tensor]:
    gt_padded, gt_valid = pad_tensors([b.tensor for b in gt_boxes])
    all_boxes = [boxes] if shared else boxes
    if quality_fn is pairwise_iou and all(type(b) is Boxes for b in list(gt_boxes) + all_boxes):
        other = boxes.tensor if shared else pad_tensors([b.tensor for b in boxes])[0]
        return retry_if_cuda_oom(batched_pairwise_iou)(gt_padded, other), gt_valid
    # Another quality (e.g. rotated IoU): computed per image, matched as a batch.
    num_cols = len(boxes) if shared else max(len(b) for b in boxes)
    quality = gt_padded.new_zeros((len(gt_boxes), gt_padded.shape[1], num_cols))
    for i, gt in enumerate(gt_boxes):
        box_i = boxes if shared else boxes[i]
        quality[i, : len(gt), : len(box_i)] = retry_if_cuda_oom(quality_fn)(gt, box_i)
    return quality, gt_valid


def match_images(
    matcher: Matcher,
    quality_fn: Callable[[Boxes, Boxes], torch.Tensor],
    gt_boxes: List[Boxes],
    boxes: Union[Boxes, List[Boxes]],
    max_elements: Optional[int] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """``matcher(quality_fn(gt_boxes[i], boxes_i))`` for every image i, batched.

    Args:
        matcher: the Matcher (match_batch is used).
        quality_fn: (gt Boxes, Boxes) -> (G, N) quality; ``pairwise_iou`` on Boxes is
            computed for a whole group of images at once.
        gt_boxes: per image, the ground-truth boxes.
        boxes: one Boxes shared by all images (anchors) or one per image (proposals).
        max_elements: the cap on a group's padded quality tensor (default
            MAX_GROUP_ELEMENTS).

    Returns:
        matches (int64) and match_labels (int8), each (B, N) with N the (largest)
        number of boxes; columns past an image's own boxes are padding (label 0,
        match 0) that the caller must ignore.
    """
    shared = not isinstance(boxes, (list, tuple))
    if not shared and len(boxes) != len(gt_boxes):
        raise ValueError(f"match_images: {len(gt_boxes)} gt box lists for {len(boxes)} box lists (one per image)")
    num_gt = [len(g) for g in gt_boxes]
    num_boxes = [len(boxes)] * len(gt_boxes) if shared else [len(b) for b in boxes]
    if not gt_boxes:
        raise ValueError("match_images: no images (gt_boxes is empty)")
    device, width = gt_boxes[0].tensor.device, max(num_boxes)
    budget = MAX_GROUP_ELEMENTS if max_elements is None else max_elements
    rows: List[Optional[Tuple[torch.Tensor, torch.Tensor]]] = [None] * len(gt_boxes)
    for group in _groups(num_gt, num_boxes, budget, MIN_GROUP_WASTE):
        group_boxes = boxes if shared else [boxes[i] for i in group]
        quality, gt_valid = _group_quality(quality_fn, [gt_boxes[i] for i in group], group_boxes, shared)
        m, lab = retry_if_cuda_oom(matcher.match_batch)(quality, gt_valid)
        pad = width - m.shape[1]  # a group's widest image may be narrower than the batch's
        # .to(device): the matcher may have fallen back to the CPU on OOM.
        m, lab = m.to(device), lab.to(device)
        if pad > 0:
            m, lab = torch.nn.functional.pad(m, (0, pad)), torch.nn.functional.pad(lab, (0, pad))
        for i, m_i, lab_i in zip(group, m.unbind(0), lab.unbind(0)):
            rows[i] = (m_i, lab_i)
    return torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows])
