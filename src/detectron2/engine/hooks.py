"""Hooks for TrainerBase: timing, LR scheduling, checkpointing, evaluation, writing
metrics, precise BN statistics, profiling."""
import datetime
import itertools
import logging
import math
import operator
import os
import tempfile
import time
import warnings
from collections import Counter
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional

import torch
from fvcore.common.checkpoint import Checkpointer
from fvcore.common.checkpoint import PeriodicCheckpointer as _PeriodicCheckpointer
from fvcore.common.param_scheduler import ParamScheduler
from fvcore.common.timer import Timer

import detectron2.utils.comm as comm
from detectron2.utils._fvcore_nn import get_bn_modules, update_bn_stats
from detectron2.solver import LRMultiplier
from detectron2.solver import LRScheduler as _LRScheduler
from detectron2.utils.events import EventStorage, EventWriter
from detectron2.utils.file_io import PathManager

from .train_loop import HookBase

__all__ = [
    "CallbackHook",
    "IterationTimer",
    "PeriodicWriter",
    "PeriodicCheckpointer",
    "BestCheckpointer",
    "LRScheduler",
    "AutogradProfiler",
    "EvalHook",
    "PreciseBN",
    "TorchProfiler",
    "TorchMemoryStats",
]

logger = logging.getLogger(__name__)

_TrainerCallback = Optional[Callable[[Any], None]]


class CallbackHook(HookBase):
    """A hook made of plain functions, each called with the trainer."""

    def __init__(
        self,
        *,
        before_train: _TrainerCallback = None,
        after_train: _TrainerCallback = None,
        before_step: _TrainerCallback = None,
        after_step: _TrainerCallback = None,
    ):
        self._before_train = before_train
        self._before_step = before_step
        self._after_step = after_step
        self._after_train = after_train

    def before_train(self) -> None:
        if self._before_train:
            self._before_train(self.trainer)

    def after_train(self) -> None:
        if self._after_train:
            self._after_train(self.trainer)
        # The callbacks may close over the trainer: drop them to break the cycle.
        del self._before_train, self._after_train
        del self._before_step, self._after_step

    def before_step(self) -> None:
        if self._before_step:
            self._before_step(self.trainer)

    def after_step(self) -> None:
        if self._after_step:
            self._after_step(self.trainer)


class IterationTimer(HookBase):
    """Puts the time of each iteration ("time") into the storage and logs the overall
    speed at the end. Register it first: the time it measures is from its before_step
    to its after_step, i.e. the step plus the other hooks' before_step."""

    def __init__(self, warmup_iter: int = 3):
        """
        Args:
            warmup_iter: the first iterations, excluded from the timing (they are slow).
        """
        self._warmup_iter = warmup_iter
        self._step_timer = Timer()
        self._start_time = time.perf_counter()
        self._total_timer = Timer()

    def before_train(self) -> None:
        self._start_time = time.perf_counter()
        self._total_timer.reset()
        self._total_timer.pause()

    def after_train(self) -> None:
        total_time = time.perf_counter() - self._start_time
        total_time_minus_hooks = self._total_timer.seconds()
        hook_time = total_time - total_time_minus_hooks
        num_iter = self.trainer.storage.iter + 1 - self.trainer.start_iter - self._warmup_iter
        if num_iter > 0 and total_time_minus_hooks > 0:
            logger.info(
                "Overall training speed: {} iterations in {} ({:.4f} s / it)".format(
                    num_iter,
                    str(datetime.timedelta(seconds=int(total_time_minus_hooks))),
                    total_time_minus_hooks / num_iter,
                )
            )
        logger.info(
            "Total training time: {} ({} on hooks)".format(
                str(datetime.timedelta(seconds=int(total_time))),
                str(datetime.timedelta(seconds=int(hook_time))),
            )
        )

    def before_step(self) -> None:
        self._step_timer.reset()
        self._total_timer.resume()

    def after_step(self) -> None:
        # +1: the current iteration is done but the storage has not counted it yet.
        iter_done = self.trainer.storage.iter - self.trainer.start_iter + 1
        if iter_done >= self._warmup_iter:
            self.trainer.storage.put_scalars(time=self._step_timer.seconds())
        else:
            self._start_time = time.perf_counter()
            self._total_timer.reset()
        self._total_timer.pause()


class PeriodicWriter(HookBase):
    """Calls each writer's write() every ``period`` iterations and at the end."""

    def __init__(self, writers: List[EventWriter], period: int = 20):
        for w in writers:
            if not isinstance(w, EventWriter):
                raise TypeError(f"writers must be EventWriter instances, got {type(w).__name__}")
        self._writers = writers
        self._period = period

    def after_step(self) -> None:
        if (self.trainer.iter + 1) % self._period == 0 or (self.trainer.iter == self.trainer.max_iter - 1):
            for writer in self._writers:
                writer.write()

    def after_train(self) -> None:
        for writer in self._writers:
            # Write what after_train hooks before this one may have added, then close.
            writer.write()
            writer.close()


class PeriodicCheckpointer(_PeriodicCheckpointer, HookBase):
    """fvcore's PeriodicCheckpointer as a hook: saves ``model_{iter:07d}.pth`` every
    ``period`` iterations and ``model_final.pth`` at the last one; ``max_iter`` comes
    from the trainer."""

    def before_train(self) -> None:
        self.max_iter = self.trainer.max_iter

    def after_step(self) -> None:
        self.step(self.trainer.iter)


class BestCheckpointer(HookBase):
    """Saves a checkpoint named ``file_prefix`` whenever the metric ``val_metric`` in the
    storage (written by an EvalHook registered before this hook) improves."""

    def __init__(
        self,
        eval_period: int,
        checkpointer: Checkpointer,
        val_metric: str,
        mode: str = "max",
        file_prefix: str = "model_best",
    ) -> None:
        """
        Args:
            eval_period: the EvalHook's period: the metric is checked after evaluations.
            checkpointer: saves the model.
            val_metric: the storage key of the metric, e.g. "bbox/AP50".
            mode: "max" if larger is better, "min" if smaller is.
            file_prefix: name of the checkpoint file.
        """
        self._period = eval_period
        self._val_metric = val_metric
        if mode not in ("max", "min"):
            raise ValueError(f'mode must be "max" or "min", got {mode!r}')
        self._compare = operator.gt if mode == "max" else operator.lt
        self._checkpointer = checkpointer
        self._file_prefix = file_prefix
        self.best_metric: Optional[float] = None
        self.best_iter: Optional[int] = None

    def _update_best(self, val: float, iteration: int) -> bool:
        if math.isnan(val) or math.isinf(val):
            return False
        self.best_metric = val
        self.best_iter = iteration
        return True

    def _best_checking(self) -> None:
        metric_tuple = self.trainer.storage.latest().get(self._val_metric)
        if metric_tuple is None:
            logger.warning(
                f"Given val metric {self._val_metric} does not seem to be computed/stored. "
                "Will not be checkpointing based on it."
            )
            return
        latest_metric, metric_iter = metric_tuple
        if self.best_metric is None:
            if self._update_best(latest_metric, metric_iter):
                self._checkpointer.save(self._file_prefix, iteration=metric_iter)
                logger.info(f"Saved first model at {self.best_metric:0.5f} @ {self.best_iter} steps")
        elif self._compare(latest_metric, self.best_metric):
            logger.info(
                f"Saved best model as latest eval score for {self._val_metric} is {latest_metric:0.5f}, "
                f"better than last best score {self.best_metric:0.5f} @ iteration {self.best_iter}."
            )
            self._update_best(latest_metric, metric_iter)
            self._checkpointer.save(self._file_prefix, iteration=metric_iter)
        else:
            logger.info(
                f"Not saving as latest eval score for {self._val_metric} is {latest_metric:0.5f}, "
                f"not better than best score {self.best_metric:0.5f} @ iteration {self.best_iter}."
            )

    def after_step(self) -> None:
        # Same condition as EvalHook's, so this runs right after an evaluation.
        next_iter = self.trainer.iter + 1
        if self._period > 0 and next_iter % self._period == 0 and next_iter != self.trainer.max_iter:
            self._best_checking()

    def after_train(self) -> None:
        if self.trainer.iter + 1 >= self.trainer.max_iter:
            self._best_checking()


class LRScheduler(HookBase):
    """Steps an LR scheduler after every iteration and puts the LR ("lr") into the
    storage. The scheduler is saved with the trainer's checkpoints."""

    def __init__(self, optimizer: Optional[torch.optim.Optimizer] = None, scheduler=None):
        """
        Args:
            optimizer: None: the trainer's ``optimizer``.
            scheduler: a torch LRScheduler, or an fvcore ParamScheduler (turned into an
                LRMultiplier over the trainer's max_iter). None: the trainer's
                ``scheduler``.
        """
        self._optimizer = optimizer
        self._scheduler = scheduler

    def before_train(self) -> None:
        self._optimizer = self._optimizer or self.trainer.optimizer
        if isinstance(self.scheduler, ParamScheduler):
            self._scheduler = LRMultiplier(
                self._optimizer,
                self.scheduler,
                self.trainer.max_iter,
                last_iter=self.trainer.iter - 1,
            )
        self._best_param_group_id = LRScheduler.get_best_param_group_id(self._optimizer)

    @staticmethod
    def get_best_param_group_id(optimizer: torch.optim.Optimizer) -> int:
        """The param group whose LR is the one to log: the largest group, or, when all
        groups hold one parameter, the first group with the most common LR."""
        largest_group = max(len(g["params"]) for g in optimizer.param_groups)
        if largest_group == 1:
            lr_count = Counter([g["lr"] for g in optimizer.param_groups])
            lr = lr_count.most_common()[0][0]
            for i, g in enumerate(optimizer.param_groups):
                if g["lr"] == lr:
                    return i
        for i, g in enumerate(optimizer.param_groups):
            if len(g["params"]) == largest_group:
                return i
        return 0

    def after_step(self) -> None:
        lr = self._optimizer.param_groups[self._best_param_group_id]["lr"]
        self.trainer.storage.put_scalar("lr", lr, smoothing_hint=False)
        self.scheduler.step()

    @property
    def scheduler(self):
        return self._scheduler or self.trainer.scheduler

    def state_dict(self) -> Dict[str, Any]:
        if isinstance(self.scheduler, _LRScheduler):
            return self.scheduler.state_dict()
        return {}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        if isinstance(self.scheduler, _LRScheduler):
            logger.info("Loading scheduler from state_dict ...")
            self.scheduler.load_state_dict(state_dict)


def _export_chrome_trace(prof, out_file: str) -> None:
    """Write a profiler's Chrome trace to a local path or any PathManager URL."""
    if "://" not in out_file:
        prof.export_chrome_trace(out_file)
        return
    # Remote paths: the exporter only writes local files.
    with tempfile.TemporaryDirectory(prefix="detectron2_profiler") as d:
        tmp_file = os.path.join(d, "tmp.json")
        prof.export_chrome_trace(tmp_file)
        with open(tmp_file) as f:
            content = f.read()
    with PathManager.open(out_file, "w") as f:
        f.write(content)


class TorchProfiler(HookBase):
    """Profiles the iterations selected by ``enable_predicate`` with torch.profiler and
    writes a TensorBoard trace or a Chrome trace (``profiler-trace-iter{N}.json``).

    Example::

        hooks.TorchProfiler(lambda trainer: 10 < trainer.iter < 20, cfg.OUTPUT_DIR)
    """

    def __init__(
        self,
        enable_predicate: Callable[[Any], bool],
        output_dir: str,
        *,
        activities: Optional[Iterable[torch.profiler.ProfilerActivity]] = None,
        save_tensorboard: bool = True,
    ):
        """
        Args:
            enable_predicate: called with the trainer before each step: profile it?
            output_dir: where the traces go.
            activities: torch.profiler activities (None: CPU, plus CUDA when available).
            save_tensorboard: a TensorBoard trace per profiled iteration (else a Chrome
                trace file).
        """
        self._enable_predicate = enable_predicate
        self._activities = activities
        self._output_dir = output_dir
        self._save_tensorboard = save_tensorboard
        self._profiler = None

    def before_step(self) -> None:
        if not self._enable_predicate(self.trainer):
            self._profiler = None
            return
        on_trace_ready = None
        if self._save_tensorboard:
            on_trace_ready = torch.profiler.tensorboard_trace_handler(
                os.path.join(self._output_dir, "log", "profiler-tensorboard-iter{}".format(self.trainer.iter)),
                f"worker{comm.get_rank()}",
            )
        self._profiler = torch.profiler.profile(
            activities=self._activities,
            on_trace_ready=on_trace_ready,
            record_shapes=True,
            profile_memory=True,
            with_stack=True,
            with_flops=True,
        )
        self._profiler.__enter__()

    def after_step(self) -> None:
        if self._profiler is None:
            return
        self._profiler.__exit__(None, None, None)
        if not self._save_tensorboard:
            PathManager.mkdirs(self._output_dir)
            out_file = os.path.join(self._output_dir, "profiler-trace-iter{}.json".format(self.trainer.iter))
            _export_chrome_trace(self._profiler, out_file)


class AutogradProfiler(TorchProfiler):
    """Deprecated: the older torch.autograd.profiler, writing Chrome traces. Use
    TorchProfiler."""

    def __init__(self, enable_predicate: Callable[[Any], bool], output_dir: str, *, use_cuda: bool = True):
        """
        Args:
            enable_predicate: called with the trainer before each step: profile it?
            output_dir: where the ``profiler-trace-iter{N}.json`` files go.
            use_cuda: also profile CUDA kernels.
        """
        warnings.warn("AutogradProfiler has been deprecated in favor of TorchProfiler.", DeprecationWarning)
        super().__init__(enable_predicate, output_dir, save_tensorboard=False)
        self._use_cuda = use_cuda

    def before_step(self) -> None:
        if not self._enable_predicate(self.trainer):
            self._profiler = None
            return
        try:  # torch >= 2.4 names the device; older versions take use_cuda
            self._profiler = torch.autograd.profiler.profile(use_device="cuda" if self._use_cuda else None)
        except TypeError:
            self._profiler = torch.autograd.profiler.profile(use_cuda=self._use_cuda)
        self._profiler.__enter__()


def _flatten_results(results: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    """{"bbox": {"AP": 1}} -> {"bbox/AP": 1}."""
    flat: Dict[str, Any] = {}
    for k, v in results.items():
        if isinstance(v, Mapping):
            flat.update(_flatten_results(v, f"{prefix}{k}/"))
        else:
            flat[f"{prefix}{k}"] = v
    return flat


class EvalHook(HookBase):
    """Runs ``eval_function`` every ``eval_period`` iterations and after the last one,
    and puts its (nested dict of numbers) results into the storage as "a/b/c" scalars."""

    def __init__(self, eval_period: int, eval_function: Callable[[], Optional[Mapping]], eval_after_train: bool = True):
        """
        Args:
            eval_period: iterations between evaluations (0: only at the end).
            eval_function: takes no arguments, returns a nested dict of numbers (or
                None/empty on processes that have no results). It is called on every
                process and may use collectives.
            eval_after_train: also evaluate after the last iteration.
        """
        self._period = eval_period
        self._func = eval_function
        self._eval_after_train = eval_after_train

    def _do_eval(self) -> None:
        results = self._func()
        if results:
            if not isinstance(results, Mapping):
                raise TypeError("Eval function must return a dict. Got {} instead.".format(results))
            flattened_results = _flatten_results(results)
            for k, v in flattened_results.items():
                try:
                    float(v)
                except Exception as e:
                    raise ValueError(
                        "[EvalHook] eval_function should return a nested dict of float. "
                        "Got '{}: {}' instead.".format(k, v)
                    ) from e
            self.trainer.storage.put_scalars(**flattened_results, smoothing_hint=False)
        # Evaluation may take different time on different workers: wait for all.
        comm.synchronize()

    def after_step(self) -> None:
        next_iter = self.trainer.iter + 1
        if self._period > 0 and next_iter % self._period == 0:
            # The last iteration is evaluated in after_train.
            if next_iter != self.trainer.max_iter:
                self._do_eval()

    def after_train(self) -> None:
        # iter + 1 < max_iter: training failed; evaluating would only add noise.
        if self._eval_after_train and self.trainer.iter + 1 >= self.trainer.max_iter:
            self._do_eval()
        # The function often closes over the trainer: drop it to break the cycle.
        del self._func


class PreciseBN(HookBase):
    """Every ``period`` iterations and at the end, recomputes the BatchNorm statistics of
    the model with fvcore's precise BN (true averages over ``num_iter`` batches instead of
    the running EMA). Disabled when the model has no BN layers in training mode."""

    def __init__(self, period: int, model: torch.nn.Module, data_loader: Iterable, num_iter: int):
        """
        Args:
            period: iterations between updates (0: only at the end).
            model: a model whose BN layers are in training mode.
            data_loader: batches to run the model on; its iterator is kept between
                updates.
            num_iter: batches per update.
        """
        if len(get_bn_modules(model)) == 0:
            logger.info("PreciseBN is disabled because model does not contain BN layers in training mode.")
            self._disabled = True
            return
        self._model = model
        self._data_loader = data_loader
        self._num_iter = num_iter
        self._period = period
        self._disabled = False
        self._data_iter = None

    def after_step(self) -> None:
        next_iter = self.trainer.iter + 1
        is_final = next_iter == self.trainer.max_iter
        if is_final or (self._period > 0 and next_iter % self._period == 0):
            self.update_stats()

    def update_stats(self) -> None:
        """Recompute the BN statistics now."""
        if self._disabled:
            return
        if self._data_iter is None:
            self._data_iter = iter(self._data_loader)

        def data_loader():
            for num_iter in itertools.count(1):
                if num_iter % 100 == 0:
                    logger.info("Running precise-BN ... {}/{} iterations.".format(num_iter, self._num_iter))
                yield next(self._data_iter)

        # A private storage: the model's forward may put metrics that must not reach
        # the training storage.
        with EventStorage():
            logger.info(
                "Running precise-BN for {} iterations...  ".format(self._num_iter)
                + "Note that this could produce different statistics every time."
            )
            update_bn_stats(self._model, data_loader(), self._num_iter)


class TorchMemoryStats(HookBase):
    """Every ``period`` iterations, logs and stores the CUDA memory statistics (reserved
    and allocated, current and peak in MiB), then resets the peaks. At most
    ``max_runs`` times. Does nothing without CUDA."""

    def __init__(self, period: int = 20, max_runs: int = 10):
        self._period = period
        self._max_runs = max_runs
        self._runs = 0

    def after_step(self) -> None:
        if self._runs > self._max_runs or not torch.cuda.is_available():
            return
        if (self.trainer.iter + 1) % self._period == 0 or (self.trainer.iter == self.trainer.max_iter - 1):
            mib = 1024.0 * 1024.0
            stats = dict(
                max_reserved_mem=torch.cuda.max_memory_reserved() / mib,
                reserved_mem=torch.cuda.memory_reserved() / mib,
                max_allocated_mem=torch.cuda.max_memory_allocated() / mib,
                allocated_mem=torch.cuda.memory_allocated() / mib,
            )
            logger.info(
                " iter: {}  ".format(self.trainer.iter) + "  ".join(f"{k}: {v:.2f}MB" for k, v in stats.items())
            )
            self.trainer.storage.put_scalars(**stats)
            self._runs += 1
            if self._runs == self._max_runs:
                logger.info("\n" + torch.cuda.memory_summary())
            torch.cuda.reset_peak_memory_stats()
