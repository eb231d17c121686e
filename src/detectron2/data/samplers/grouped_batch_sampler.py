"""Batches whose elements all come from the same group (e.g. the same aspect ratio)."""
from typing import Iterator, List, Sequence

import numpy as np
from torch.utils.data.sampler import Sampler

__all__ = ["GroupedBatchSampler"]


class GroupedBatchSampler(Sampler):
    """Wraps a sampler into batches of ``batch_size`` indices sharing one group id.

    Indices come out in the order the wrapped sampler yields them, as far as grouping
    allows: a batch is emitted as soon as its group's bucket is full. Incomplete
    buckets are never emitted, so this is meant for infinite samplers.
    """

    def __init__(self, sampler: Sampler, group_ids: Sequence[int], batch_size: int):
        """
        Args:
            sampler: yields dataset indices.
            group_ids: the group of each dataset index (a 1-D sequence of ints).
            batch_size: elements per batch.
        """
        if not isinstance(sampler, Sampler):
            raise TypeError(f"GroupedBatchSampler: sampler must be a torch Sampler, got {type(sampler).__name__}")
        group_ids = np.asarray(group_ids)
        if group_ids.ndim != 1:
            raise ValueError(f"GroupedBatchSampler: group_ids must be 1-D, got shape {group_ids.shape}")
        if batch_size < 1:
            raise ValueError(f"GroupedBatchSampler: batch_size must be >= 1, got {batch_size}")
        self.sampler = sampler
        self.group_ids = group_ids
        self.batch_size = batch_size
        self.groups = np.unique(group_ids).tolist()
        self.buffer_per_group = {k: [] for k in self.groups}

    def __iter__(self) -> Iterator[List[int]]:
        for idx in self.sampler:
            bucket = self.buffer_per_group[self.group_ids[idx]]
            bucket.append(idx)
            if len(bucket) == self.batch_size:
                yield bucket[:]
                del bucket[:]

    def __len__(self) -> int:
        raise TypeError("len() of GroupedBatchSampler is not well-defined (incomplete groups are held back).")
