"""Dataset wrappers: list-backed, mapped, iterable-from-sampler and aspect-ratio batching."""
import contextlib
import copy
import itertools
import logging
import pickle
import random
from typing import Any, Callable, Iterable, Iterator, List, Union

import numpy as np
import torch
import torch.utils.data as data
from torch.utils.data.sampler import Sampler

from detectron2.utils.serialize import PicklableWrapper

__all__ = ["MapDataset", "DatasetFromList", "AspectRatioGroupedDataset", "ToIterableDataset"]

logger = logging.getLogger(__name__)


def _chunks(iterable: Iterable, chunk_size: int) -> Iterator[List]:
    it = iter(iterable)
    while True:
        chunk = list(itertools.islice(it, chunk_size))
        if not chunk:
            return
        yield chunk


def _shard_iterator_dataloader_worker(iterable: Iterable, chunk_size: int = 1) -> Iterator:
    """The share of ``iterable`` for the current DataLoader worker: chunks of ``chunk_size``
    consecutive elements dealt round-robin, so each worker gets whole batches."""
    worker_info = data.get_worker_info()
    if worker_info is None or worker_info.num_workers == 1:
        yield from iterable
        return
    shards = itertools.islice(_chunks(iterable, chunk_size), worker_info.id, None, worker_info.num_workers)
    yield from itertools.chain.from_iterable(shards)


class _MapIterableDataset(data.IterableDataset):
    """``map_func`` over an IterableDataset; elements mapped to None are dropped."""

    def __init__(self, dataset: data.IterableDataset, map_func: Callable):
        self._dataset = dataset
        self._map_func = PicklableWrapper(map_func)  # wrap a lambda so workers can receive it

    def __len__(self) -> int:
        return len(self._dataset)

    def __iter__(self) -> Iterator:
        for x in map(self._map_func, self._dataset):
            if x is not None:
                yield x


class MapDataset(data.Dataset):
    """``map_func`` applied to each element of ``dataset``.

    When ``map_func`` returns None (e.g. an augmentation cropped away every instance),
    another randomly chosen element is tried instead, with a warning after 3 failures.
    On an IterableDataset the result is iterable too, and None elements are skipped.
    """

    def __new__(cls, dataset, map_func):
        if isinstance(dataset, data.IterableDataset):
            return _MapIterableDataset(dataset, map_func)
        return super().__new__(cls)

    def __getnewargs__(self):
        return self._dataset, self._map_func

    def __init__(self, dataset, map_func: Callable):
        self._dataset = dataset
        self._map_func = PicklableWrapper(map_func)
        self._rng = random.Random(42)
        self._fallback_candidates = set(range(len(dataset)))

    def __len__(self) -> int:
        return len(self._dataset)

    def __getitem__(self, idx: int) -> Any:
        retry_count = 0
        cur_idx = int(idx)
        while True:
            result = self._map_func(self._dataset[cur_idx])
            if result is not None:
                self._fallback_candidates.add(cur_idx)
                return result
            retry_count += 1
            self._fallback_candidates.discard(cur_idx)
            if not self._fallback_candidates:
                raise RuntimeError(f"MapDataset: map_func returned None for every element (first asked: idx {idx})")
            cur_idx = self._rng.choice(sorted(self._fallback_candidates))
            if retry_count >= 3:
                logger.warning(f"Failed to apply `_map_func` for idx: {idx}, retry count: {retry_count}")


class NumpySerializedList:
    """A list stored as one numpy byte buffer of pickled elements plus an offsets array.

    Two objects instead of millions of Python objects: DataLoader workers forked from
    the main process read it without touching refcounts, so pages are never copied
    (copy-on-read would otherwise grow every worker's memory to the dataset's size).
    """

    def __init__(self, lst: list):
        logger.info(f"Serializing {len(lst)} elements to byte tensors and concatenating them all ...")
        buffers = [np.frombuffer(pickle.dumps(x, protocol=-1), dtype=np.uint8) for x in lst]
        self._addr = np.cumsum(np.asarray([len(b) for b in buffers], dtype=np.int64))
        self._lst = np.concatenate(buffers) if buffers else np.zeros(0, dtype=np.uint8)
        logger.info(f"Serialized dataset takes {len(self._lst) / 1024 ** 2:.2f} MiB")

    def __len__(self) -> int:
        return len(self._addr)

    def _span(self, idx: int):
        n = len(self._addr)
        if idx < 0:
            idx += n
        if not 0 <= idx < n:
            raise IndexError(f"index {idx} out of range for a dataset of {n} elements")
        start = 0 if idx == 0 else int(self._addr[idx - 1])
        return start, int(self._addr[idx])

    def __getitem__(self, idx: int) -> Any:
        start, end = self._span(idx)
        return pickle.loads(memoryview(self._lst[start:end]))


class _TorchSerializedList(NumpySerializedList):
    """Same storage held in torch tensors, which torch multiprocessing shares between
    processes through shared memory (also with the spawn/forkserver start methods)."""

    def __init__(self, lst: list):
        super().__init__(lst)
        self._addr = torch.from_numpy(self._addr)
        self._lst = torch.from_numpy(self._lst)

    def __getitem__(self, idx: int) -> Any:
        start, end = self._span(idx)
        return pickle.loads(memoryview(self._lst[start:end].numpy()))


_DEFAULT_DATASET_FROM_LIST_SERIALIZE_METHOD = _TorchSerializedList


@contextlib.contextmanager
def set_default_dataset_from_list_serialize_method(new: Callable[[list], Any]):
    """Temporarily change how ``DatasetFromList(serialize=True)`` serializes its list."""
    global _DEFAULT_DATASET_FROM_LIST_SERIALIZE_METHOD
    orig = _DEFAULT_DATASET_FROM_LIST_SERIALIZE_METHOD
    _DEFAULT_DATASET_FROM_LIST_SERIALIZE_METHOD = new
    try:
        yield
    finally:
        _DEFAULT_DATASET_FROM_LIST_SERIALIZE_METHOD = orig


class DatasetFromList(data.Dataset):
    """A map-style Dataset over a Python list."""

    def __init__(self, lst: list, copy: bool = True, serialize: Union[bool, Callable] = True):
        """
        Args:
            lst: the elements (usually dataset dicts).
            copy: return a deep copy of the element on access, so callers may modify it
                (irrelevant when serialized: each access unpickles a fresh object).
            serialize: store the list as pickled bytes (see NumpySerializedList), or a
                callable doing the serialization.
        """
        self._lst = lst
        self._copy = copy
        if callable(serialize):
            method = serialize
        elif serialize:
            method = _DEFAULT_DATASET_FROM_LIST_SERIALIZE_METHOD
        else:
            method = None
        self._serialize = method is not None
        if method is not None:
            self._lst = method(self._lst)

    def __len__(self) -> int:
        return len(self._lst)

    def __getitem__(self, idx: int) -> Any:
        if self._copy and not self._serialize:
            return copy.deepcopy(self._lst[idx])
        return self._lst[idx]


class ToIterableDataset(data.IterableDataset):
    """An IterableDataset yielding ``dataset[i]`` for each index ``i`` of ``sampler``.

    With ``shard_sampler`` the indices are split among DataLoader workers in chunks of
    ``shard_chunk_size``; leave it off when the sampler already shards by worker.
    """

    def __init__(self, dataset: data.Dataset, sampler: Sampler, shard_sampler: bool = True, shard_chunk_size: int = 1):
        if isinstance(dataset, data.IterableDataset):
            raise TypeError("ToIterableDataset: dataset must be a map-style Dataset, got an IterableDataset")
        if not isinstance(sampler, Sampler):
            raise TypeError(f"ToIterableDataset: sampler must be a torch Sampler, got {type(sampler).__name__}")
        if shard_chunk_size < 1:
            raise ValueError(f"ToIterableDataset: shard_chunk_size must be >= 1, got {shard_chunk_size}")
        self.dataset = dataset
        self.sampler = sampler
        self.shard_sampler = shard_sampler
        self.shard_chunk_size = shard_chunk_size

    def __iter__(self) -> Iterator:
        if self.shard_sampler:
            indices = _shard_iterator_dataloader_worker(self.sampler, self.shard_chunk_size)
        else:
            indices = self.sampler
        for idx in indices:
            yield self.dataset[idx]

    def __len__(self) -> int:
        return len(self.sampler)


class AspectRatioGroupedDataset(data.IterableDataset):
    """Batches of ``batch_size`` elements that are all landscape (w > h) or all portrait,
    which wastes less padding. Elements are dicts with "width" and "height"; an
    incomplete bucket is held back until it fills (so partial batches are never yielded).
    """

    def __init__(self, dataset: Iterable, batch_size: int):
        self.dataset = dataset
        self.batch_size = batch_size
        self._buckets: List[List] = [[] for _ in range(2)]

    def __iter__(self) -> Iterator[List]:
        for d in self.dataset:
            w, h = d["width"], d["height"]
            bucket = self._buckets[0 if w > h else 1]
            bucket.append(d)
            if len(bucket) == self.batch_size:
                batch = bucket[:]
                del bucket[:]
                yield batch
