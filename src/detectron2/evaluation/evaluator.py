"""The evaluator interface and the loop that runs a model over a dataset and feeds one."""
import datetime
import logging
import time
from collections import OrderedDict, abc
from contextlib import ExitStack, contextmanager
from typing import Any, Callable, Dict, Iterator, List, Optional, Union

import torch
from torch import nn

from detectron2.layers._errors import KeyAssertionError
from detectron2.utils.comm import get_world_size, is_main_process
from detectron2.utils.logger import log_every_n_seconds

__all__ = ["DatasetEvaluator", "DatasetEvaluators", "inference_on_dataset", "inference_context"]


class DatasetEvaluator:
    """Base class of evaluators: consumes (inputs, outputs) pairs, then computes metrics.

    ``reset`` starts a new evaluation, ``process`` takes one batch, ``evaluate`` returns
    ``{task: {metric: value}}`` (or None when this process has no results, e.g. non-main
    ranks).
    """

    def reset(self) -> None:
        """Prepare for a new round of evaluation."""

    def process(self, inputs: List[Dict[str, Any]], outputs: List[Dict[str, Any]]) -> None:
        """Accumulate one batch: ``inputs`` as given to the model, ``outputs`` as returned."""

    def evaluate(self) -> Optional[Dict[str, Any]]:
        """Metrics over everything processed since the last reset."""


class DatasetEvaluators(DatasetEvaluator):
    """Runs several evaluators side by side and merges their result dicts."""

    def __init__(self, evaluators: List[DatasetEvaluator]):
        super().__init__()
        self._evaluators = evaluators

    def reset(self) -> None:
        for evaluator in self._evaluators:
            evaluator.reset()

    def process(self, inputs: List[Dict[str, Any]], outputs: List[Dict[str, Any]]) -> None:
        for evaluator in self._evaluators:
            evaluator.process(inputs, outputs)

    def evaluate(self) -> Dict[str, Any]:
        results: Dict[str, Any] = OrderedDict()
        for evaluator in self._evaluators:
            result = evaluator.evaluate()
            if is_main_process() and result is not None:
                for key, value in result.items():
                    if key in results:
                        raise KeyAssertionError(f"DatasetEvaluators: two evaluators both produced results for {key!r}")
                    results[key] = value
        return results


def _as_evaluator(evaluator: Union[DatasetEvaluator, List[DatasetEvaluator], None]) -> DatasetEvaluator:
    if evaluator is None:
        return DatasetEvaluators([])  # still runs the model (e.g. to time it)
    if isinstance(evaluator, abc.MutableSequence):
        return DatasetEvaluators(evaluator)
    return evaluator


class _Timing:
    """Seconds spent loading data, in the model and in the evaluator since the warm-up."""

    def __init__(self, total: int, num_warmup: int):
        self.total, self.num_warmup = total, num_warmup
        self.restart()

    def restart(self) -> None:
        self.start = time.perf_counter()
        self.data = self.compute = self.eval = 0.0

    def log_progress(self, idx: int) -> None:
        iters = idx + 1 - self.num_warmup * int(idx >= self.num_warmup)
        data, compute, ev = self.data / iters, self.compute / iters, self.eval / iters
        # After a few timed iterations (or at once for a slow model) an ETA is meaningful.
        if idx < self.num_warmup * 2 and compute <= 5:
            return
        total = (time.perf_counter() - self.start) / iters
        eta = datetime.timedelta(seconds=int(total * (self.total - idx - 1)))
        msg = (
            f"Inference done {idx + 1}/{self.total}. Dataloading: {data:.4f} s/iter. "
            f"Inference: {compute:.4f} s/iter. Eval: {ev:.4f} s/iter. "
            f"Total: {total:.4f} s/iter. ETA={eta}"
        )
        if idx == self.total - 1:  # the final line is never rate-limited away
            logging.getLogger(__name__).info(msg)
        else:  # at most one line every 5 s, however fast the model
            log_every_n_seconds(logging.INFO, msg, n=5, name=__name__)


def inference_on_dataset(
    model: Union[nn.Module, Callable[[Any], Any]],
    data_loader: Any,
    evaluator: Union[DatasetEvaluator, List[DatasetEvaluator], None],
    callbacks: Optional[Dict[str, Callable[[], None]]] = None,
) -> Dict[str, Any]:
    """Run ``model`` on every batch of ``data_loader``, feed ``evaluator``, return its results.

    The model runs in eval mode and without gradients when it is an ``nn.Module``; any
    callable works. The first few iterations are excluded from the timing (warm-up).
    ``callbacks`` may hold ``on_start``, ``before_inference``, ``after_inference`` and
    ``on_end``, each called without arguments. Returns {} when the evaluator has none.
    """
    logger = logging.getLogger(__name__)
    num_devices = get_world_size()
    total = len(data_loader)
    logger.info("Start inference on %d batches", total)
    evaluator = _as_evaluator(evaluator)
    evaluator.reset()
    callbacks = callbacks or {}

    def call(name: str) -> None:
        callbacks.get(name, lambda: None)()

    timing = _Timing(total, num_warmup=min(5, total - 1))
    with ExitStack() as stack:
        if isinstance(model, nn.Module):
            stack.enter_context(inference_context(model))
        stack.enter_context(torch.no_grad())
        call("on_start")
        data_start = time.perf_counter()
        for idx, inputs in enumerate(data_loader):
            timing.data += time.perf_counter() - data_start
            if idx == timing.num_warmup:
                timing.restart()
            compute_start = time.perf_counter()
            call("before_inference")
            outputs = model(inputs)
            call("after_inference")
            if torch.cuda.is_available():
                torch.cuda.synchronize()  # asynchronous kernels belong to the compute time
            timing.compute += time.perf_counter() - compute_start
            eval_start = time.perf_counter()
            evaluator.process(inputs, outputs)
            timing.eval += time.perf_counter() - eval_start
            timing.log_progress(idx)
            data_start = time.perf_counter()
        call("on_end")

    _log_total_time(logger, timing, num_devices)
    results = evaluator.evaluate()
    # Non-main ranks get None from evaluate(); callers expect a dict everywhere.
    return {} if results is None else results


def _log_total_time(logger: logging.Logger, timing: _Timing, num_devices: int) -> None:
    timed_iters = max(timing.total - timing.num_warmup, 1)
    total_time = time.perf_counter() - timing.start
    logger.info(
        "Total inference time: %s (%.6f s / iter per device, on %d devices)",
        datetime.timedelta(seconds=total_time),
        total_time / timed_iters,
        num_devices,
    )
    logger.info(
        "Total inference pure compute time: %s (%.6f s / iter per device, on %d devices)",
        datetime.timedelta(seconds=int(timing.compute)),
        timing.compute / timed_iters,
        num_devices,
    )


@contextmanager
def inference_context(model: nn.Module) -> Iterator[None]:
    """Temporarily put ``model`` in eval mode; its training mode is restored on exit."""
    training_mode = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(training_mode)
