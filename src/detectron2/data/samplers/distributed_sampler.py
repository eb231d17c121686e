"""Index samplers for training (infinite, sharded over ranks) and inference (finite)."""
import itertools
import logging
import math
from collections import defaultdict
from typing import Dict, Iterator, List, Optional

import torch
from torch.utils.data.sampler import Sampler

from detectron2.utils import comm

__all__ = ["TrainingSampler", "RandomSubsetTrainingSampler", "RepeatFactorTrainingSampler", "InferenceSampler"]

logger = logging.getLogger(__name__)


def _check_size(size: int, who: str) -> None:
    if not isinstance(size, int) or size <= 0:
        raise ValueError(f"{who}: size must be a positive int, got {size!r}")


class _InfiniteShardedSampler(Sampler):
    """An endless stream of indices from ``_infinite_indices()``; rank r of a world of
    size n takes elements r, r+n, r+2n ... so ranks never see the same draw."""

    def __init__(self, seed: Optional[int]):
        self._seed = int(comm.shared_random_seed() if seed is None else seed)
        self._rank = comm.get_rank()
        self._world_size = comm.get_world_size()

    def __iter__(self) -> Iterator[int]:
        yield from itertools.islice(self._infinite_indices(), self._rank, None, self._world_size)

    def _infinite_indices(self) -> Iterator[int]:
        raise TypeError(f"{type(self).__name__} does not define _infinite_indices")


class TrainingSampler(_InfiniteShardedSampler):
    """Endless indices of a dataset of ``size`` elements: a fresh permutation per epoch
    (or 0..size-1 in order without shuffle), seeded identically on every rank and split
    across ranks. All workers of a DataLoader must share one instance (sharding is by
    rank, not by worker)."""

    def __init__(self, size: int, shuffle: bool = True, seed: Optional[int] = None):
        """
        Args:
            size: number of elements of the dataset.
            shuffle: permute the indices each epoch.
            seed: the generator's seed, same on all ranks; None draws a shared random one.
        """
        _check_size(size, "TrainingSampler")
        self._size = size
        self._shuffle = shuffle
        super().__init__(seed)

    def _infinite_indices(self) -> Iterator[int]:
        g = torch.Generator()
        g.manual_seed(self._seed)
        while True:
            if self._shuffle:
                yield from torch.randperm(self._size, generator=g).tolist()
            else:
                yield from range(self._size)


class RandomSubsetTrainingSampler(TrainingSampler):
    """Like TrainingSampler, but over a fixed random subset of ``subset_ratio * size``
    indices (e.g. to study training with a fraction of the data)."""

    def __init__(
        self,
        size: int,
        subset_ratio: float,
        shuffle: bool = True,
        seed_shuffle: Optional[int] = None,
        seed_subset: Optional[int] = None,
    ):
        """
        Args:
            size, shuffle: as TrainingSampler.
            subset_ratio: the fraction of indices kept, in (0, 1].
            seed_shuffle: seed of the per-epoch permutation (None: shared random).
            seed_subset: seed that picks the subset (None: shared random).
        """
        super().__init__(size=size, shuffle=shuffle, seed=seed_shuffle)
        if not 0.0 < subset_ratio <= 1.0:
            raise ValueError(f"RandomSubsetTrainingSampler: subset_ratio must be in (0, 1], got {subset_ratio}")
        self._size_subset = int(size * subset_ratio)
        if self._size_subset <= 0:
            raise ValueError(
                f"RandomSubsetTrainingSampler: subset_ratio {subset_ratio} of size {size} keeps no element"
            )
        self._seed_subset = int(comm.shared_random_seed() if seed_subset is None else seed_subset)
        g = torch.Generator()
        g.manual_seed(self._seed_subset)
        self._indexes_subset = torch.randperm(self._size, generator=g)[: self._size_subset]
        logger.info("Using RandomSubsetTrainingSampler......")
        logger.info(f"Randomly sample {self._size_subset} data from the original {self._size} data")

    def _infinite_indices(self) -> Iterator[int]:
        g = torch.Generator()
        g.manual_seed(self._seed)
        while True:
            if self._shuffle:
                yield from self._indexes_subset[torch.randperm(self._size_subset, generator=g)].tolist()
            else:
                yield from self._indexes_subset.tolist()


class RepeatFactorTrainingSampler(_InfiniteShardedSampler):
    """Endless indices where image i appears ``repeat_factors[i]`` times per epoch on
    average: the integer part always, the fractional part with that probability
    (stochastic rounding, redrawn every epoch). Used to oversample rare categories (LVIS)."""

    def __init__(self, repeat_factors: torch.Tensor, *, shuffle: bool = True, seed: Optional[int] = None):
        """
        Args:
            repeat_factors: float tensor, one factor >= 0 per dataset element.
            shuffle, seed: as TrainingSampler.
        """
        repeat_factors = torch.as_tensor(repeat_factors, dtype=torch.float32)
        if repeat_factors.ndim != 1 or repeat_factors.numel() == 0:
            raise ValueError(f"RepeatFactorTrainingSampler: repeat_factors must be a non-empty 1-D tensor, got shape {tuple(repeat_factors.shape)}")
        if bool((repeat_factors < 0).any()):
            raise ValueError("RepeatFactorTrainingSampler: repeat_factors must be >= 0")
        self._shuffle = shuffle
        super().__init__(seed)
        self._int_part = torch.trunc(repeat_factors)
        self._frac_part = repeat_factors - self._int_part

    @staticmethod
    def repeat_factors_from_category_frequency(dataset_dicts: List[Dict], repeat_thresh: float, sqrt: bool = True) -> torch.Tensor:
        """Repeat factor of each image from the frequency of its categories (LVIS paper).

        With f(c) the fraction of images containing category c, a category repeats
        r(c) = max(1, sqrt(t / f(c))) times (or t / f(c) without sqrt), and an image by
        the largest r(c) over its categories (1 for an image without annotations).

        Returns:
            float32 tensor, one repeat factor per image.
        """
        category_freq: Dict[int, float] = defaultdict(int)
        for dataset_dict in dataset_dicts:
            for cat_id in {ann["category_id"] for ann in dataset_dict["annotations"]}:
                category_freq[cat_id] += 1
        num_images = len(dataset_dicts)
        category_rep = {}
        for cat_id, count in category_freq.items():
            ratio = repeat_thresh / (count / num_images)
            category_rep[cat_id] = max(1.0, math.sqrt(ratio) if sqrt else ratio)
        rep_factors = []
        for dataset_dict in dataset_dicts:
            cat_ids = {ann["category_id"] for ann in dataset_dict["annotations"]}
            rep_factors.append(max((category_rep[c] for c in cat_ids), default=1.0))
        return torch.tensor(rep_factors, dtype=torch.float32)

    def _get_epoch_indices(self, generator: torch.Generator) -> torch.Tensor:
        """Indices of one epoch, each image repeated by its stochastically rounded factor."""
        rands = torch.rand(len(self._frac_part), generator=generator)
        rep_factors = (self._int_part + (rands < self._frac_part).float()).long()
        return torch.repeat_interleave(torch.arange(len(rep_factors)), rep_factors)

    def _infinite_indices(self) -> Iterator[int]:
        g = torch.Generator()
        g.manual_seed(self._seed)
        while True:
            indices = self._get_epoch_indices(g)
            if self._shuffle:
                indices = indices[torch.randperm(len(indices), generator=g)]
            yield from indices.tolist()


class InferenceSampler(Sampler):
    """Each rank gets one contiguous shard of 0..size-1; shard sizes differ by at most
    one, and together the shards cover every index exactly once (so evaluation sees
    each image once, unlike samplers that pad to equal sizes)."""

    def __init__(self, size: int):
        """
        Args:
            size: number of elements of the dataset.
        """
        if not isinstance(size, int) or size < 0:
            raise ValueError(f"InferenceSampler: size must be a non-negative int, got {size!r}")
        self._size = size
        self._rank = comm.get_rank()
        self._world_size = comm.get_world_size()
        self._local_indices = self._get_local_indices(size, self._world_size, self._rank)

    @staticmethod
    def _get_local_indices(total_size: int, world_size: int, rank: int) -> range:
        shard_size, left = divmod(total_size, world_size)
        shard_sizes = [shard_size + int(r < left) for r in range(world_size)]
        begin = sum(shard_sizes[:rank])
        return range(begin, begin + shard_sizes[rank])

    def __iter__(self) -> Iterator[int]:
        yield from self._local_indices

    def __len__(self) -> int:
        return len(self._local_indices)
