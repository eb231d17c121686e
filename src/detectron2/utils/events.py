"""Training-time metrics: EventStorage collects scalars, images and histograms per
iteration; EventWriters (JSON, TensorBoard, console) periodically write them out."""
import datetime
import json
import logging
import os
import statistics
import time
from abc import ABC, abstractmethod
from collections import defaultdict
from contextlib import contextmanager
from functools import cached_property
from typing import Dict, List, Optional, Tuple

import torch
from fvcore.common.history_buffer import HistoryBuffer

from .file_io import PathManager

__all__ = [
    "get_event_storage",
    "has_event_storage",
    "JSONWriter",
    "TensorboardXWriter",
    "CommonMetricPrinter",
    "EventStorage",
]

_CURRENT_STORAGE_STACK: List["EventStorage"] = []


def get_event_storage() -> "EventStorage":
    """The innermost EventStorage currently entered with ``with EventStorage(...)``."""
    if not _CURRENT_STORAGE_STACK:
        raise AssertionError("get_event_storage() has to be called inside a 'with EventStorage(...)' context!")
    return _CURRENT_STORAGE_STACK[-1]


def has_event_storage() -> bool:
    """Whether some EventStorage is currently entered."""
    return len(_CURRENT_STORAGE_STACK) > 0


class EventWriter(ABC):
    """Base class of writers that read the current EventStorage and write it somewhere."""

    @abstractmethod
    def write(self) -> None:
        """Write the metrics of the current storage."""

    def close(self) -> None:
        """Release resources (files, sockets); a writer is not used after close()."""


class JSONWriter(EventWriter):
    """Appends one JSON object per iteration (scalars, smoothed per their hint, plus
    "iteration") to a file, one object per line; each iteration is written once."""

    def __init__(self, json_file: str, window_size: int = 20):
        """
        Args:
            json_file: path of the file; new lines are appended to an existing file.
            window_size: median window for scalars put with ``smoothing_hint=True``.
        """
        self._file_handle = PathManager.open(json_file, "a")
        self._window_size = window_size
        self._last_write = -1

    def write(self) -> None:
        storage = get_event_storage()
        to_save: Dict[int, Dict[str, float]] = defaultdict(dict)
        for k, (v, itr) in storage.latest_with_smoothing_hint(self._window_size).items():
            if itr <= self._last_write:  # already written
                continue
            to_save[itr][k] = v
        if not to_save:
            return
        self._last_write = max(to_save.keys())
        for itr in sorted(to_save.keys()):
            record = dict(to_save[itr])
            record["iteration"] = itr
            self._file_handle.write(json.dumps(record, sort_keys=True) + "\n")
        self._file_handle.flush()
        try:
            os.fsync(self._file_handle.fileno())
        except (AttributeError, OSError, ValueError):
            pass  # remote or in-memory files have no file descriptor

    def close(self) -> None:
        self._file_handle.close()


class TensorboardXWriter(EventWriter):
    """Writes scalars, images and histograms to TensorBoard event files."""

    def __init__(self, log_dir: str, window_size: int = 20, **kwargs):
        """
        Args:
            log_dir: the directory for the event files.
            window_size: median window for scalars put with ``smoothing_hint=True``.
            kwargs: passed to ``torch.utils.tensorboard.SummaryWriter``.
        """
        self._window_size = window_size
        self._writer_args = {"log_dir": log_dir, **kwargs}
        self._last_write = -1

    @cached_property
    def _writer(self):
        # Created on first use: the import is slow and creating it makes files.
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(**self._writer_args)

    def write(self) -> None:
        storage = get_event_storage()
        new_last_write = self._last_write
        for k, (v, itr) in storage.latest_with_smoothing_hint(self._window_size).items():
            if itr > self._last_write:
                self._writer.add_scalar(k, v, itr)
                new_last_write = max(new_last_write, itr)
        self._last_write = new_last_write

        # Images and histograms are written once, then dropped from the storage.
        if storage._vis_data:
            for img_name, img, step_num in storage._vis_data:
                self._writer.add_image(img_name, img, step_num)
            storage.clear_images()
        if storage._histograms:
            for params in storage._histograms:
                self._writer.add_histogram_raw(**params)
            storage.clear_histograms()

    def close(self) -> None:
        if "_writer" in self.__dict__:  # only if it was ever created
            self._writer.close()


class CommonMetricPrinter(EventWriter):
    """Prints ETA, iteration, losses, timing, learning rate and peak GPU memory to the
    log, e.g. ``eta: 0:10:00  iter: 20  total_loss: 1.2  loss_cls: 0.5 ... lr: 0.02``.

    Only the common metrics are printed: subclass it for anything fancier.
    """

    def __init__(self, max_iter: Optional[int] = None, window_size: int = 20):
        """
        Args:
            max_iter: the total number of iterations, used for the ETA (None: no ETA).
            window_size: median window for the printed losses.
        """
        self.logger = logging.getLogger("detectron2.utils.events")
        self._max_iter = max_iter
        self._window_size = window_size
        self._last_write: Optional[Tuple[int, float]] = None  # (iteration, perf_counter)

    def _get_eta(self, storage: "EventStorage") -> Optional[str]:
        if self._max_iter is None:
            return ""
        iteration = storage.iter
        try:
            eta_seconds = storage.history("time").median(1000) * (self._max_iter - iteration - 1)
            storage.put_scalar("eta_seconds", eta_seconds, smoothing_hint=False)
            return str(datetime.timedelta(seconds=int(eta_seconds)))
        except KeyError:
            # No "time" metric (e.g. no IterationTimer hook): estimate from our own calls.
            eta_string = None
            if self._last_write is not None and iteration > self._last_write[0]:
                per_iter = (time.perf_counter() - self._last_write[1]) / (iteration - self._last_write[0])
                eta_seconds = per_iter * (self._max_iter - iteration - 1)
                eta_string = str(datetime.timedelta(seconds=int(eta_seconds)))
            self._last_write = (iteration, time.perf_counter())
            return eta_string

    def write(self) -> None:
        storage = get_event_storage()
        iteration = storage.iter
        if iteration == self._max_iter:
            # Training is over: the final hooks print their own summary.
            return

        def _stat(name: str, fn):
            try:
                return fn(storage.history(name))
            except KeyError:
                return None

        avg_data_time = _stat("data_time", lambda h: h.avg(storage.count_samples("data_time", self._window_size)))
        last_data_time = _stat("data_time", lambda h: h.latest())
        avg_iter_time = _stat("time", lambda h: h.global_avg())
        last_iter_time = _stat("time", lambda h: h.latest())
        lr = _stat("lr", lambda h: "{:.5g}".format(h.latest()))
        lr = "N/A" if lr is None else lr

        eta_string = self._get_eta(storage)
        max_mem_mb = torch.cuda.max_memory_allocated() / 1024.0 / 1024.0 if torch.cuda.is_available() else None

        def _smoothed(names):
            return "  ".join(
                f"{k}: {storage.histories()[k].median(storage.count_samples(k, self._window_size)):.4g}"
                for k in names
            )

        keys = list(storage.histories().keys())
        losses = _smoothed([k for k in keys if "loss" in k])
        non_losses = _smoothed([k for k in keys if "[metric]" in k])
        parts = [
            f"eta: {eta_string}  " if eta_string else "",
            f"iter: {iteration}  ",
            f"{losses}  " if losses else "",
            f"{non_losses}  " if non_losses else "",
            f"time: {avg_iter_time:.4f}  " if avg_iter_time is not None else "",
            f"last_time: {last_iter_time:.4f}  " if last_iter_time is not None else "",
            f"data_time: {avg_data_time:.4f}  " if avg_data_time is not None else "",
            f"last_data_time: {last_data_time:.4f}  " if last_data_time is not None else "",
            f"lr: {lr}  ",
            f"max_mem: {max_mem_mb:.0f}M" if max_mem_mb is not None else "",
        ]
        self.logger.info(" " + "".join(parts).rstrip())


class EventStorage:
    """Per-iteration metric storage, entered as a context manager during training.

    Scalars keep a full history (HistoryBuffer) plus their latest value; images and
    histograms are kept until a writer consumes them.
    """

    def __init__(self, start_iter: int = 0):
        """
        Args:
            start_iter: the iteration number to start with.
        """
        self._history: Dict[str, HistoryBuffer] = defaultdict(HistoryBuffer)
        self._smoothing_hints: Dict[str, bool] = {}
        self._latest_scalars: Dict[str, Tuple[float, int]] = {}
        self._iter = start_iter
        self._current_prefix = ""
        self._vis_data: List[Tuple[str, torch.Tensor, int]] = []
        self._histograms: List[dict] = []

    def put_image(self, img_name: str, img_tensor) -> None:
        """Add an image (CHW, float in [0, 1] or uint8 in [0, 255], RGB) for the current
        iteration; TensorboardXWriter writes it once."""
        self._vis_data.append((img_name, img_tensor, self._iter))

    def put_scalar(self, name: str, value, smoothing_hint: bool = True, cur_iter: Optional[int] = None) -> None:
        """Add a scalar for the current (or given) iteration.

        Args:
            value: a number or a one-element tensor.
            smoothing_hint: whether writers should show a windowed median instead of the
                raw value. It must stay the same for all puts of one name.
            cur_iter: record the value at this iteration instead of the current one.
        """
        name = self._current_prefix + name
        cur_iter = self._iter if cur_iter is None else cur_iter
        value = float(value)
        self._history[name].update(value, cur_iter)
        self._latest_scalars[name] = (value, cur_iter)

        existing_hint = self._smoothing_hints.get(name)
        if existing_hint is None:
            self._smoothing_hints[name] = smoothing_hint
        elif existing_hint != smoothing_hint:
            raise AssertionError(f"Scalar {name} was put with a different smoothing_hint!")

    def put_scalars(self, *, smoothing_hint: bool = True, cur_iter: Optional[int] = None, **kwargs) -> None:
        """Put several scalars, e.g. ``storage.put_scalars(loss=1.0, accuracy=0.5)``."""
        for k, v in kwargs.items():
            self.put_scalar(k, v, smoothing_hint=smoothing_hint, cur_iter=cur_iter)

    def put_histogram(self, hist_name: str, hist_tensor: torch.Tensor, bins: int = 1000) -> None:
        """Add the histogram of ``hist_tensor``'s values (``bins`` equal bins between its
        min and max) for the current iteration; TensorboardXWriter writes it once."""
        ht_min, ht_max = hist_tensor.min().item(), hist_tensor.max().item()
        hist_counts = torch.histc(hist_tensor.float(), bins=bins)
        hist_edges = torch.linspace(start=ht_min, end=ht_max, steps=bins + 1, dtype=torch.float32)
        self._histograms.append(
            dict(
                tag=hist_name,
                min=ht_min,
                max=ht_max,
                num=len(hist_tensor),
                sum=float(hist_tensor.sum()),
                sum_squares=float(torch.sum(hist_tensor**2)),
                bucket_limits=hist_edges[1:].tolist(),  # right edges, as TensorBoard expects
                bucket_counts=hist_counts.tolist(),
                global_step=self._iter,
            )
        )

    def history(self, name: str) -> HistoryBuffer:
        """The HistoryBuffer of scalar ``name``; KeyError if it was never put."""
        ret = self._history.get(name)
        if ret is None:
            raise KeyError(f"No history metric available for {name}!")
        return ret

    def histories(self) -> Dict[str, HistoryBuffer]:
        """All scalar histories, by name."""
        return self._history

    def latest(self) -> Dict[str, Tuple[float, int]]:
        """name -> (latest value, the iteration it was put at)."""
        return self._latest_scalars

    def latest_with_smoothing_hint(self, window_size: int = 20) -> Dict[str, Tuple[float, int]]:
        """Like latest(), but scalars with a smoothing hint give the median over the
        samples of their last ``window_size`` iterations."""
        result = {}
        for k, (v, itr) in self._latest_scalars.items():
            if self._smoothing_hints[k]:
                v = self._window_median(k, window_size)
            result[k] = (v, itr)
        return result

    def _window_median(self, name: str, window_size: int) -> float:
        """HistoryBuffer.median over count_samples(name, window_size) values, without
        numpy: np.median's fixed cost dominates for windows of ~20 values."""
        n = self.count_samples(name, window_size)
        return float(statistics.median(v for v, _ in self._history[name].values()[-n:]))

    def count_samples(self, name: str, window_size: int = 20) -> int:
        """How many samples of ``name`` were put within its last ``window_size`` iterations."""
        data = self._history[name].values()
        if not data:
            return 0
        last_iter = data[-1][1]
        samples = 0
        for _, itr in reversed(data):
            if itr <= last_iter - window_size:
                break
            samples += 1
        return samples

    def smoothing_hints(self) -> Dict[str, bool]:
        """name -> whether that scalar should be smoothed when written."""
        return self._smoothing_hints

    def step(self) -> None:
        """Advance to the next iteration (the trainer calls this once per iteration)."""
        self._iter += 1

    @property
    def iter(self) -> int:
        """The current iteration number."""
        return self._iter

    @iter.setter
    def iter(self, val: int) -> None:
        self._iter = int(val)

    @property
    def iteration(self) -> int:
        """Alias of ``iter`` kept for backward compatibility."""
        return self._iter

    def __enter__(self) -> "EventStorage":
        _CURRENT_STORAGE_STACK.append(self)
        return self

    def __exit__(self, exc_type, exc_val, exc_tb) -> None:
        if not _CURRENT_STORAGE_STACK or _CURRENT_STORAGE_STACK[-1] is not self:
            raise AssertionError("EventStorage contexts must be exited in the reverse order of entering")
        _CURRENT_STORAGE_STACK.pop()

    @contextmanager
    def name_scope(self, name: str):
        """Prefix the names of scalars put inside the block with ``name/``."""
        old_prefix = self._current_prefix
        self._current_prefix = name.rstrip("/") + "/"
        try:
            yield
        finally:
            self._current_prefix = old_prefix

    def clear_images(self) -> None:
        """Drop stored images (writers call this once they have written them)."""
        self._vis_data = []

    def clear_histograms(self) -> None:
        """Drop stored histograms (writers call this once they have written them)."""
        self._histograms = []
