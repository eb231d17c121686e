"""Find where a data loading pipeline spends its time: reading the dataset, the mapper,
worker processes, inter-process communication, or distributed training."""
import logging
import time
from typing import Any, Callable, Iterator, List, Optional, Tuple, Union

import numpy as np
import torch.utils.data as torchdata

from detectron2.utils import comm
from detectron2.utils.logger import log_every_n_seconds

from .build import build_batch_data_loader
from .common import DatasetFromList, MapDataset
from .samplers import TrainingSampler

__all__ = ["DataLoaderBenchmark"]

logger = logging.getLogger(__name__)


class _DiscardOutput:
    """Runs ``mapper`` but hands back a tiny value, so no data crosses process boundaries."""

    def __init__(self, mapper: Callable):
        self.mapper = mapper

    def __call__(self, x: Any) -> int:
        self.mapper(x)
        return 0


class DataLoaderBenchmark:
    """Time the stages of a training data loader one at a time.

    Each ``benchmark_*`` method logs the mean time per iteration with percentiles and
    returns the mean (seconds); compare them to find the bottleneck.
    """

    def __init__(
        self,
        dataset: Union[List, torchdata.Dataset],
        *,
        mapper: Callable,
        sampler: Optional[torchdata.Sampler] = None,
        total_batch_size: int,
        num_workers: int = 0,
        max_time_seconds: float = 90,
    ):
        """
        Args:
            dataset: dataset dicts (list) or a map-style dataset.
            mapper: the per-element mapping (e.g. DatasetMapper).
            sampler: default TrainingSampler.
            total_batch_size, num_workers: as build_detection_train_loader.
            max_time_seconds: each benchmark stops after this long.
        """
        if isinstance(dataset, list):
            dataset = DatasetFromList(dataset, copy=False, serialize=True)
        if sampler is None:
            sampler = TrainingSampler(len(dataset))
        self.dataset = dataset
        self.mapper = mapper
        self.sampler = sampler
        self.total_batch_size = total_batch_size
        self.num_workers = num_workers
        self.per_gpu_batch_size = self.total_batch_size // comm.get_world_size()
        self.max_time_seconds = max_time_seconds

    def _benchmark(self, iterator: Iterator, num_iter: int, warmup: int, msg: Optional[str] = None) -> Tuple[float, List[float]]:
        """Mean seconds per ``next(iterator)`` after ``warmup`` calls, and all samples."""
        for _ in range(warmup):
            next(iterator)
        timer_start = time.perf_counter()
        all_times = []
        for k in range(num_iter):
            start = time.perf_counter()
            next(iterator)
            all_times.append(time.perf_counter() - start)
            if msg is not None:
                log_every_n_seconds(logging.INFO, f"{msg}: iteration {k + 1}/{num_iter}", n=10, name=__name__)
            if time.perf_counter() - timer_start > self.max_time_seconds:
                break
        return float(np.mean(all_times)), all_times

    def _log_time(self, msg: str, avg: float, all_times: List[float], distributed: bool = False) -> None:
        percentiles = [np.percentile(all_times, k, method="nearest") for k in (1, 5, 95, 99)]
        if not distributed:
            logger.info(
                f"{msg}: avg={1.0 / avg:.1f} it/s, p1={percentiles[0]:.2g}s, p5={percentiles[1]:.2g}s, "
                f"p95={percentiles[2]:.2g}s, p99={percentiles[3]:.2g}s."
            )
            return
        avg_per_gpu = comm.all_gather(avg)
        percentiles_per_gpu = comm.all_gather(percentiles)
        if comm.get_rank() > 0:
            return
        for idx, avg_i, p in zip(range(len(avg_per_gpu)), avg_per_gpu, percentiles_per_gpu):
            logger.info(
                f"GPU{idx} {msg}: avg={1.0 / avg_i:.1f} it/s, p1={p[0]:.2g}s, p5={p[1]:.2g}s, "
                f"p95={p[2]:.2g}s, p99={p[3]:.2g}s."
            )

    def _samples(self, fn: Callable[[Any], Any]) -> Iterator:
        while True:
            for k in self.sampler:
                yield fn(self.dataset[k])

    def benchmark_dataset(self, num_iter: int, warmup: int = 5) -> float:
        """Reading elements of the dataset alone (no mapper)."""
        avg, all_times = self._benchmark(self._samples(lambda x: x), num_iter, warmup)
        self._log_time("Dataset Alone", avg, all_times)
        return avg

    def benchmark_mapper(self, num_iter: int, warmup: int = 5) -> float:
        """The dataset plus the mapper, in this process (no workers)."""
        avg, all_times = self._benchmark(self._samples(self.mapper), num_iter, warmup)
        self._log_time("Single Process Mapper (sec/sample)", avg, all_times)
        return avg

    def _loader(self, dataset: torchdata.Dataset, num_workers: int):
        return build_batch_data_loader(dataset, self.sampler, self.total_batch_size, num_workers=num_workers)

    def benchmark_workers(self, num_iter: int, warmup: int = 10) -> List[float]:
        """The full loader with 0, 1, 2, 4 ... up to ``num_workers`` workers."""
        candidates = [0, 1]
        while candidates[-1] * 2 <= self.num_workers:
            candidates.append(candidates[-1] * 2)
        if self.num_workers > candidates[-1]:
            candidates.append(self.num_workers)
        dataset = MapDataset(self.dataset, self.mapper)
        results = []
        for n in candidates:
            loader = self._loader(dataset, n)
            avg, all_times = self._benchmark(
                iter(loader), num_iter * max(n, 1), warmup * max(n, 1), f"DataLoader ({n} workers, bs={self.per_gpu_batch_size})"
            )
            del loader
            self._log_time(f"DataLoader ({n} workers, bs={self.per_gpu_batch_size})", avg, all_times)
            results.append(avg)
        return results

    def benchmark_IPC(self, num_iter: int, warmup: int = 10) -> float:
        """The loader whose workers run the mapper but return nothing: the difference to
        benchmark_workers is the cost of moving batches between processes."""
        n = self.num_workers
        dataset = MapDataset(self.dataset, _DiscardOutput(self.mapper))
        loader = self._loader(dataset, n)
        avg, all_times = self._benchmark(iter(loader), num_iter * max(n, 1), warmup * max(n, 1))
        del loader
        self._log_time(f"DataLoader ({n} workers, bs={self.per_gpu_batch_size}) w/o comm", avg, all_times)
        return avg

    def benchmark_distributed(self, num_iter: int, warmup: int = 10) -> float:
        """The loader on every rank at once (run it in all processes of a launch)."""
        loader = self._loader(MapDataset(self.dataset, self.mapper), self.num_workers)
        n = max(self.num_workers, 1)
        comm.synchronize()
        avg, all_times = self._benchmark(iter(loader), num_iter * n, warmup * n)
        del loader
        self._log_time(
            f"DataLoader ({self.num_workers} workers, bs={self.per_gpu_batch_size})", avg, all_times, distributed=True
        )
        return avg
