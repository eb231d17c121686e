from typing import List, Tuple

import torch

from detectron2.layers import nonzero_tuple

__all__ = ["subsample_labels", "subsample_labels_batched"]


def subsample_labels(labels: torch.Tensor, num_samples: int, positive_fraction: float, bg_label: int):
    """Randomly pick at most ``num_samples`` elements, of which at most
    ``positive_fraction`` are positive; negatives fill the rest when positives run short.

    Args:
        labels (Tensor): (N,) with -1 = ignore, ``bg_label`` = negative, anything else
            positive.
        num_samples (int): the total number to sample.
        positive_fraction (float): the wanted fraction of positives, in [0, 1].
        bg_label (int): the label of negatives.

    Returns:
        pos_idx, neg_idx (Tensor): 1-D indices into ``labels`` of the sampled positives
        and negatives.
    """
    if labels.dim() != 1:
        raise ValueError(f"subsample_labels: labels must be 1-D, got shape {tuple(labels.shape)}")
    if not 0.0 <= positive_fraction <= 1.0:
        raise ValueError(f"subsample_labels: positive_fraction must be in [0, 1], got {positive_fraction}")
    positive = nonzero_tuple((labels != -1) & (labels != bg_label))[0]
    negative = nonzero_tuple(labels == bg_label)[0]

    num_pos = min(positive.numel(), int(num_samples * positive_fraction))
    num_neg = min(negative.numel(), num_samples - num_pos)

    perm1 = torch.randperm(positive.numel(), device=positive.device)[:num_pos]
    perm2 = torch.randperm(negative.numel(), device=negative.device)[:num_neg]
    return positive[perm1], negative[perm2]


def subsample_labels_batched(
    labels: torch.Tensor, num_samples: int, positive_fraction: float, bg_label: int
) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """subsample_labels for every row of ``labels`` (B, N), with the same results and the
    same random draws (the randperm calls happen in the same order, with the same sizes),
    but the host waits for the device twice in all instead of twice per row.

    Returns:
        list of (pos_idx, neg_idx), one pair per row.
    """
    if labels.dim() != 2:
        raise ValueError(f"subsample_labels_batched: labels must be 2-D (B, N), got shape {tuple(labels.shape)}")
    if not 0.0 <= positive_fraction <= 1.0:
        raise ValueError(f"subsample_labels_batched: positive_fraction must be in [0, 1], got {positive_fraction}")
    positive_mask = (labels != -1) & (labels != bg_label)
    negative_mask = labels == bg_label
    counts = torch.stack([positive_mask.sum(dim=1), negative_mask.sum(dim=1)], dim=1).tolist()
    # Row-major nonzero: each row's indices are contiguous and increasing, as per row.
    positive_all = nonzero_tuple(positive_mask)[1]
    negative_all = nonzero_tuple(negative_mask)[1]
    results, pos_start, neg_start = [], 0, 0
    for num_positive, num_negative in counts:
        positive = positive_all[pos_start:pos_start + num_positive]
        negative = negative_all[neg_start:neg_start + num_negative]
        pos_start += num_positive
        neg_start += num_negative
        num_pos = min(num_positive, int(num_samples * positive_fraction))
        num_neg = min(num_negative, num_samples - num_pos)
        perm1 = torch.randperm(num_positive, device=labels.device)[:num_pos]
        perm2 = torch.randperm(num_negative, device=labels.device)[:num_neg]
        results.append((positive[perm1], negative[perm2]))
    return results
