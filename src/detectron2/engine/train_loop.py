"""The training loop: TrainerBase runs hooks around an abstract step; SimpleTrainer and
AMPTrainer implement the step for the usual "loss dict -> backward -> optimizer" case."""
import concurrent.futures
import contextlib
import logging
import math
import time
import weakref
from abc import ABCMeta, abstractmethod
from typing import Any, Dict, Iterable, List, Mapping, Optional

import torch
from torch.nn.parallel import DataParallel, DistributedDataParallel

import detectron2.utils.comm as comm
from detectron2.utils.env import get_rng_state, set_rng_state
from detectron2.utils.events import EventStorage, get_event_storage
from detectron2.utils.logger import _log_api_usage

__all__ = ["HookBase", "TrainerBase", "SimpleTrainer", "AMPTrainer"]

logger = logging.getLogger(__name__)


class HookBase:
    """Something run at fixed points of training. The trainer calls, in order::

        hook.before_train()
        for iter in range(start_iter, max_iter):
            hook.before_step()
            trainer.run_step()          # calls hook.after_backward() after loss.backward()
            hook.after_step()
        iter += 1
        hook.after_train()

    ``self.trainer`` (a weak proxy, set by ``TrainerBase.register_hooks``) gives access to
    the model, optimizer, ``iter``, ``max_iter`` and ``storage``.
    """

    trainer: "TrainerBase" = None

    def before_train(self) -> None:
        """Called once before the first iteration."""

    def after_train(self) -> None:
        """Called once after the last iteration, also when training raised."""

    def before_step(self) -> None:
        """Called before each iteration."""

    def after_backward(self) -> None:
        """Called after the backward pass of each iteration (by trainers that support it)."""

    def after_step(self) -> None:
        """Called after each iteration."""

    def state_dict(self) -> Dict[str, Any]:
        """The hook's state to checkpoint with the trainer; an empty dict is not saved."""
        return {}


class TrainerBase(metaclass=ABCMeta):
    """A loop over iterations ``[start_iter, max_iter)`` that runs ``run_step`` between
    the hooks, inside an EventStorage.

    Attributes:
        iter: the current iteration; after a completed train() it equals ``max_iter``.
        start_iter, max_iter: the iteration range of the last ``train()``.
        storage: the EventStorage of the running training.
    """

    def __init__(self) -> None:
        self._hooks: List[HookBase] = []
        self.iter: int = 0
        self.start_iter: int = 0
        self.max_iter: int = 0
        self.storage: EventStorage
        _log_api_usage("trainer." + self.__class__.__name__)

    def register_hooks(self, hooks: Iterable[Optional[HookBase]]) -> None:
        """Append hooks (None entries are skipped); they run in registration order."""
        hooks = [h for h in hooks if h is not None]
        for h in hooks:
            if not isinstance(h, HookBase):
                raise TypeError(f"hooks must be HookBase instances, got {type(h).__name__}")
            # A weak proxy: the trainer owns its hooks, not the other way around, so the
            # two do not keep each other alive.
            h.trainer = weakref.proxy(self)
        self._hooks.extend(hooks)

    def train(self, start_iter: int, max_iter: int) -> None:
        """Run iterations ``start_iter`` to ``max_iter - 1``."""
        logger.info("Starting training from iteration {}".format(start_iter))
        self.iter = self.start_iter = start_iter
        self.max_iter = max_iter
        with EventStorage(start_iter) as self.storage:
            try:
                self.before_train()
                for self.iter in range(start_iter, max_iter):
                    self.before_step()
                    self.run_step()
                    self.after_step()
                # iter == max_iter tells after_train hooks that training completed.
                self.iter += 1
            except Exception:
                logger.exception("Exception during training:")
                raise
            finally:
                self.after_train()

    def before_train(self) -> None:
        for h in self._hooks:
            h.before_train()

    def after_train(self) -> None:
        self.storage.iter = self.iter
        for h in self._hooks:
            h.after_train()

    def before_step(self) -> None:
        # Keep the storage's iteration in sync: hooks may read it in before_step.
        self.storage.iter = self.iter
        for h in self._hooks:
            h.before_step()

    def after_backward(self) -> None:
        for h in self._hooks:
            h.after_backward()

    def after_step(self) -> None:
        for h in self._hooks:
            h.after_step()

    @abstractmethod
    def run_step(self) -> None:
        """One training iteration."""

    def state_dict(self) -> Dict[str, Any]:
        ret: Dict[str, Any] = {"iteration": self.iter}
        hooks_state = {}
        for h in self._hooks:
            sd = h.state_dict()
            if sd:
                name = type(h).__qualname__
                if name in hooks_state:
                    continue  # two hooks of one type: only the first one's state is kept
                hooks_state[name] = sd
        if hooks_state:
            ret["hooks"] = hooks_state
        return ret

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        self.iter = state_dict["iteration"]
        for key, value in state_dict.get("hooks", {}).items():
            for h in self._hooks:
                if type(h).__qualname__ == key:
                    h.load_state_dict(value)
                    break
            else:
                logger.warning(f"Cannot find the hook '{key}', its state_dict is ignored.")


class SimpleTrainer(TrainerBase):
    """One iteration = next batch -> ``model(data)`` (a dict of losses, or one loss
    tensor) -> sum -> backward -> ``optimizer.step()``, with the losses and data time
    written to the EventStorage. Single or multi-process (DDP) training alike.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        data_loader: Iterable,
        optimizer: torch.optim.Optimizer,
        gather_metric_period: int = 1,
        zero_grad_before_forward: bool = False,
        async_write_metrics: bool = False,
    ):
        """
        Args:
            model: in training mode, returns a dict of scalar losses.
            data_loader: an iterable of batches; ``model(batch)`` is called on each.
            optimizer: the optimizer of ``model``'s parameters.
            gather_metric_period: gather and write the losses every this many iterations
                (gathering costs a synchronization across processes).
            zero_grad_before_forward: zero the gradients before the forward pass (for
                models that accumulate into ``.grad`` during forward).
            async_write_metrics: write the metrics in a background thread.
        """
        super().__init__()
        if gather_metric_period < 1:
            raise ValueError(f"gather_metric_period must be >= 1, got {gather_metric_period}")
        model.train()
        self.model = model
        self.data_loader = data_loader
        self._data_loader_iter_obj = None
        self.optimizer = optimizer
        self.gather_metric_period = gather_metric_period
        self.zero_grad_before_forward = zero_grad_before_forward
        self.async_write_metrics = async_write_metrics
        # One worker keeps the metrics of successive iterations in order.
        self.concurrent_executor = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        self._metric_futures: List[concurrent.futures.Future] = []

    def run_step(self) -> None:
        assert self.model.training, f"[{type(self).__name__}] model was changed to eval mode!"
        start = time.perf_counter()
        data = next(self._data_loader_iter)
        data_time = time.perf_counter() - start

        if self.zero_grad_before_forward:
            self.optimizer.zero_grad()
        with self._forward_context():
            loss_dict, losses = _sum_losses(self.model(data))
        if not self.zero_grad_before_forward:
            self.optimizer.zero_grad()
        self._backward(losses)
        self.after_backward()
        self._dispatch_metrics(loss_dict, data_time)
        self._optimizer_step()

    # The three places where AMPTrainer differs.
    def _forward_context(self):
        return contextlib.nullcontext()

    def _backward(self, losses: torch.Tensor) -> None:
        losses.backward()

    def _optimizer_step(self) -> None:
        self.optimizer.step()

    def _dispatch_metrics(self, loss_dict: Mapping[str, torch.Tensor], data_time: float) -> None:
        if not self.async_write_metrics:
            self._write_metrics(loss_dict, data_time)
            return
        self._raise_failed_metric_writes(wait=False)
        # Detached copies: the background thread must not see the next iteration's values.
        loss_dict = {k: v.detach() for k, v in loss_dict.items()}
        self._metric_futures.append(
            self.concurrent_executor.submit(self._write_metrics, loss_dict, data_time, iter=self.iter)
        )

    def _raise_failed_metric_writes(self, wait: bool) -> None:
        """Re-raise, in the training thread, errors (e.g. a NaN loss) of metric writes."""
        pending = []
        for future in self._metric_futures:
            if wait or future.done():
                future.result()
            else:
                pending.append(future)
        self._metric_futures = pending

    @property
    def _data_loader_iter(self):
        # Created on first use, so that a trainer can be built before its loader starts.
        if self._data_loader_iter_obj is None:
            self._data_loader_iter_obj = iter(self.data_loader)
        return self._data_loader_iter_obj

    def reset_data_loader(self, data_loader_builder) -> None:
        """Replace the data loader by ``data_loader_builder()`` (e.g. to free the workers
        of the old one first)."""
        del self.data_loader
        data_loader = data_loader_builder()
        self.data_loader = data_loader
        self._data_loader_iter_obj = None

    def _write_metrics(
        self,
        loss_dict: Mapping[str, torch.Tensor],
        data_time: float,
        prefix: str = "",
        iter: Optional[int] = None,
    ) -> None:
        iter = self.iter if iter is None else iter
        if (iter + 1) % self.gather_metric_period == 0:
            try:
                SimpleTrainer.write_metrics(loss_dict, data_time, iter, prefix)
            except Exception:
                logger.exception("Exception in writing metrics: ")
                raise

    @staticmethod
    def write_metrics(
        loss_dict: Mapping[str, torch.Tensor],
        data_time: float,
        cur_iter: int,
        prefix: str = "",
    ) -> None:
        """Gather the losses and data time of all processes and put them into the current
        EventStorage on the main process: losses averaged, data time the slowest.

        Raises:
            FloatingPointError: when the total loss is not finite, naming the losses that
                are not.
        """
        metrics_dict = _losses_to_floats(loss_dict)
        metrics_dict["data_time"] = data_time
        storage = get_event_storage()
        storage.put_scalar("rank_data_time", data_time, cur_iter=cur_iter)

        # gather (not all_reduce): only the main process writes, and it sees every rank.
        all_metrics_dict = comm.gather(metrics_dict)
        if not comm.is_main_process():
            return
        # The slowest worker's data time tells whether data loading is the bottleneck.
        data_time = max(x.pop("data_time") for x in all_metrics_dict)
        storage.put_scalar("data_time", data_time, cur_iter=cur_iter)

        # Plain Python arithmetic: numpy's per-call cost shows at one small list per loss.
        n = len(all_metrics_dict)
        metrics_dict = {k: sum(x[k] for x in all_metrics_dict) / n for k in all_metrics_dict[0].keys()}
        total_losses_reduced = sum(metrics_dict.values())
        if not math.isfinite(total_losses_reduced):
            bad = [k for k, v in metrics_dict.items() if not math.isfinite(v)]
            raise FloatingPointError(
                f"Loss became infinite or NaN at iteration={cur_iter}! "
                f"Non-finite losses: {', '.join(bad)}\nloss_dict = {metrics_dict}"
            )
        storage.put_scalar("{}total_loss".format(prefix), total_losses_reduced, cur_iter=cur_iter)
        if len(metrics_dict) > 1:
            storage.put_scalars(cur_iter=cur_iter, **metrics_dict)

    def state_dict(self) -> Dict[str, Any]:
        ret = super().state_dict()
        ret["optimizer"] = self.optimizer.state_dict()
        # With the RNG states a single-process run resumes bit-exactly, given a data
        # loader that resumes its sampling where it stopped and draws its base seed from
        # its own generator (build_batch_data_loader's ``seed``), not the global RNG.
        ret["rng_state"] = dict(get_rng_state(), world_size=comm.get_world_size())
        return ret

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.optimizer.load_state_dict(state_dict["optimizer"])
        rng = state_dict.get("rng_state")  # absent in upstream's checkpoints
        # Only the main process's states are saved: other ranks keep their own seeds.
        if rng is not None and rng.get("world_size") == comm.get_world_size() == 1:
            set_rng_state(rng)

    def after_train(self) -> None:
        try:
            self._raise_failed_metric_writes(wait=True)
        finally:
            super().after_train()

    def __del__(self):
        executor = getattr(self, "concurrent_executor", None)
        if executor is not None:
            executor.shutdown(wait=False)


def _losses_to_floats(loss_dict: Mapping[str, torch.Tensor]) -> Dict[str, float]:
    """The scalar losses as Python floats, in one device-to-host copy (one GPU sync per
    iteration instead of one per loss)."""
    values = list(loss_dict.values())
    if len({v.device for v in values}) != 1:
        return {k: v.detach().cpu().item() for k, v in loss_dict.items()}
    # reshape(()) refuses non-scalar losses, as .item() would.
    stacked = torch.stack([v.detach().reshape(()).float() for v in values])
    return dict(zip(loss_dict.keys(), stacked.cpu().tolist()))


def _sum_losses(output: Any):
    """(loss dict, total loss) of a model's training output."""
    if isinstance(output, torch.Tensor):
        return {"total_loss": output}, output
    if not isinstance(output, Mapping) or not output:
        raise TypeError(f"In training mode the model must return a non-empty dict of losses or a tensor, got {type(output).__name__}")
    return output, sum(output.values())


def _default_grad_scaler(device_type: str):
    try:
        return torch.amp.GradScaler(device_type)
    except (AttributeError, TypeError, RuntimeError):  # torch < 2.3: only the CUDA scaler
        return torch.cuda.amp.GradScaler(enabled=device_type == "cuda")


def _model_device_type(model: torch.nn.Module) -> str:
    for p in model.parameters():
        return p.device.type
    return "cuda" if torch.cuda.is_available() else "cpu"


class AMPTrainer(SimpleTrainer):
    """SimpleTrainer with automatic mixed precision: the forward pass runs under
    ``torch.autocast`` on the model's device (CUDA, or CPU with bfloat16) and the loss is
    scaled by a GradScaler."""

    def __init__(
        self,
        model: torch.nn.Module,
        data_loader: Iterable,
        optimizer: torch.optim.Optimizer,
        gather_metric_period: int = 1,
        zero_grad_before_forward: bool = False,
        grad_scaler=None,
        precision: torch.dtype = torch.float16,
        log_grad_scaler: bool = False,
        async_write_metrics: bool = False,
    ):
        """
        Args:
            grad_scaler: None: a GradScaler for the model's device.
            precision: the autocast dtype, torch.float16 or torch.bfloat16.
            log_grad_scaler: put the loss scale into the storage each iteration.
            Others as in SimpleTrainer.
        """
        unsupported = "AMPTrainer does not support single-process multi-device training!"
        if isinstance(model, DistributedDataParallel):
            assert not (model.device_ids and len(model.device_ids) > 1), unsupported
        assert not isinstance(model, DataParallel), unsupported
        if precision not in (torch.float16, torch.bfloat16):
            raise ValueError(f"precision must be torch.float16 or torch.bfloat16, got {precision}")
        super().__init__(model, data_loader, optimizer, gather_metric_period, zero_grad_before_forward, async_write_metrics)
        self._device_type = _model_device_type(model)
        if grad_scaler is None:
            grad_scaler = _default_grad_scaler(self._device_type)
        self.grad_scaler = grad_scaler
        self.precision = precision
        self.log_grad_scaler = log_grad_scaler

    def _forward_context(self):
        return torch.autocast(device_type=self._device_type, dtype=self.precision)

    def _backward(self, losses: torch.Tensor) -> None:
        self.grad_scaler.scale(losses).backward()
        if self.log_grad_scaler:
            self.storage.put_scalar("[metric]grad_scaler", self.grad_scaler.get_scale())

    def _optimizer_step(self) -> None:
        self.grad_scaler.step(self.optimizer)
        self.grad_scaler.update()

    def state_dict(self) -> Dict[str, Any]:
        ret = super().state_dict()
        ret["grad_scaler"] = self.grad_scaler.state_dict()
        return ret

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.grad_scaler.load_state_dict(state_dict["grad_scaler"])
