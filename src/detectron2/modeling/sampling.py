import torch

from detectron2.layers import nonzero_tuple

__all__ = ["subsample_labels"]


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
