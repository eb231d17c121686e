"""Learning-rate schedules: fvcore ParamSchedulers turned into torch LR schedulers.

The schedule is a multiplier of each param group's base LR, expressed over the
normalized training progress ``where = iter / max_iter``, as in upstream: the trainer
steps once more after the last iteration, so ``where`` reaches 1.0 and the schedule ends
exactly on its end value (e.g. 0 for a cosine to 0); stepping further passes ``where > 1``
to the fvcore scheduler, which raises for the step schedules.
"""
import logging
import math
import warnings
from bisect import bisect_right
from typing import List

import torch
from fvcore.common.param_scheduler import (
    CompositeParamScheduler,
    ConstantParamScheduler,
    LinearParamScheduler,
    ParamScheduler,
)

from detectron2.layers._errors import ValueTypeError

try:
    from torch.optim.lr_scheduler import LRScheduler
except ImportError:  # torch < 2.0 only has the private name
    from torch.optim.lr_scheduler import _LRScheduler as LRScheduler

__all__ = [
    "LRScheduler",
    "LRMultiplier",
    "WarmupParamScheduler",
    "WarmupMultiStepLR",
    "WarmupCosineLR",
]

logger = logging.getLogger(__name__)


class WarmupParamScheduler(CompositeParamScheduler):
    """Prepends a warmup phase (constant or linear ramp) to another ParamScheduler."""

    def __init__(
        self,
        scheduler: ParamScheduler,
        warmup_factor: float,
        warmup_length: float,
        warmup_method: str = "linear",
        rescale_interval: bool = False,
    ):
        """
        Args:
            scheduler: the schedule that follows warmup.
            warmup_factor: the multiplier at the very start of warmup, relative to
                ``scheduler(0)``.
            warmup_length: the fraction of training spent in warmup, in [0, 1].
            warmup_method: "linear" (ramp up to the schedule's value at the end of
                warmup) or "constant" (hold the start value).
            rescale_interval: run ``scheduler`` over the remaining ``1 - warmup_length``
                rescaled to [0, 1] instead of over its own absolute interval.
        """
        if not 0.0 <= warmup_length <= 1.0:
            raise ValueError(f"warmup_length must be in [0, 1], got {warmup_length}")
        end_value = scheduler(0.0) if rescale_interval else scheduler(warmup_length)
        start_value = warmup_factor * scheduler(0.0)
        if warmup_method == "constant":
            warmup = ConstantParamScheduler(start_value)
        elif warmup_method == "linear":
            warmup = LinearParamScheduler(start_value, end_value)
        else:
            raise ValueError(f"warmup_method must be 'linear' or 'constant', got {warmup_method!r}")
        super().__init__(
            [warmup, scheduler],
            interval_scaling=["rescaled", "rescaled" if rescale_interval else "fixed"],
            lengths=[warmup_length, 1 - warmup_length],
        )


class LRMultiplier(LRScheduler):
    """Sets each param group's LR to ``base_lr * multiplier(iter / max_iter)``.

    Stepped once per iteration (not per epoch). Unlike torch's schedulers, it composes
    with any fvcore ParamScheduler, so the schedule's shape is independent of the
    optimizer, e.g.::

        LRMultiplier(opt, WarmupParamScheduler(MultiStepParamScheduler(
            [1, 0.1, 0.01], milestones=[60000, 80000], num_updates=90000),
            0.001, 100 / 90000), max_iter=90000)
    """

    def __init__(self, optimizer: torch.optim.Optimizer, multiplier: ParamScheduler, max_iter: int, last_iter: int = -1):
        """
        Args:
            multiplier: maps training progress in [0, 1) to the LR multiplier.
            max_iter: the total number of iterations.
            last_iter: the iteration that last ran (-1: none), for resuming.
        """
        if not isinstance(multiplier, ParamScheduler):
            # upstream raises ValueError here; TypeError is the natural type.
            raise ValueTypeError(
                f"LRMultiplier(multiplier=) must be an fvcore ParamScheduler, got {type(multiplier).__name__}"
            )
        if max_iter <= 0:
            raise ValueError(f"max_iter must be positive, got {max_iter}")
        self._multiplier = multiplier
        self._max_iter = max_iter
        super().__init__(optimizer, last_epoch=last_iter)

    def state_dict(self) -> dict:
        # The multiplier is code, not state: only the position and base LRs are saved.
        return {"base_lrs": self.base_lrs, "last_epoch": self.last_epoch}

    def get_lr(self) -> List[float]:
        where = self.last_epoch / self._max_iter
        try:
            multiplier = self._multiplier(where)
        except IndexError:
            # fvcore's StepParamScheduler (under WarmupStepWithFixedGammaLR) indexes one
            # past its list at exactly where == 1.0, the trainer's step after the last
            # iteration, whose LR is never used: hold the last value there rather than
            # crash at the end of training. Anything further still raises.
            if where != 1.0:
                raise
            multiplier = self._multiplier(1.0 - 2 * ParamScheduler.WHERE_EPSILON)
        return [base_lr * multiplier for base_lr in self.base_lrs]


# ---------------------------------------------------------------- legacy schedulers
# Kept for code that constructs them directly; build_lr_scheduler uses LRMultiplier.


def _get_warmup_factor_at_iter(method: str, iter: int, warmup_iters: int, warmup_factor: float) -> float:
    """The warmup multiplier at ``iter``: 1 after warmup, otherwise the constant
    ``warmup_factor`` or a linear ramp from ``warmup_factor`` to 1."""
    if iter >= warmup_iters:
        return 1.0
    if method == "constant":
        return warmup_factor
    if method == "linear":
        alpha = iter / warmup_iters
        return warmup_factor * (1 - alpha) + alpha
    raise ValueError(f"Unknown warmup method: {method}")


class _LegacyWarmupLR(LRScheduler):
    """The warmup shared by the legacy schedulers."""

    def __init__(self, optimizer, warmup_factor: float, warmup_iters: int, warmup_method: str, last_epoch: int):
        self.warmup_factor = warmup_factor
        self.warmup_iters = warmup_iters
        self.warmup_method = warmup_method
        super().__init__(optimizer, last_epoch)

    def _warmup(self) -> float:
        return _get_warmup_factor_at_iter(self.warmup_method, self.last_epoch, self.warmup_iters, self.warmup_factor)

    def _compute_values(self) -> List[float]:
        return self.get_lr()


class WarmupMultiStepLR(_LegacyWarmupLR):
    """Deprecated: warmup then ``gamma`` decay at each milestone. Use LRMultiplier with
    WarmupParamScheduler(MultiStepParamScheduler(...)) instead."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        milestones: List[int],
        gamma: float = 0.1,
        warmup_factor: float = 0.001,
        warmup_iters: int = 1000,
        warmup_method: str = "linear",
        last_epoch: int = -1,
    ):
        warnings.warn("WarmupMultiStepLR is deprecated! Use LRMultiplier with fvcore ParamScheduler instead!", DeprecationWarning)
        if list(milestones) != sorted(milestones):
            raise ValueError(f"milestones must be increasing integers, got {milestones}")
        self.milestones = list(milestones)
        self.gamma = gamma
        super().__init__(optimizer, warmup_factor, warmup_iters, warmup_method, last_epoch)

    def get_lr(self) -> List[float]:
        decay = self.gamma ** bisect_right(self.milestones, self.last_epoch)
        return [base_lr * self._warmup() * decay for base_lr in self.base_lrs]


class WarmupCosineLR(_LegacyWarmupLR):
    """Deprecated: warmup then half a cosine from base LR down to 0 at ``max_iters``.
    Use LRMultiplier with WarmupParamScheduler(CosineParamScheduler(1, 0)) instead."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        max_iters: int,
        warmup_factor: float = 0.001,
        warmup_iters: int = 1000,
        warmup_method: str = "linear",
        last_epoch: int = -1,
    ):
        warnings.warn("WarmupCosineLR is deprecated! Use LRMultiplier with fvcore ParamScheduler instead!", DeprecationWarning)
        self.max_iters = max_iters
        super().__init__(optimizer, warmup_factor, warmup_iters, warmup_method, last_epoch)

    def get_lr(self) -> List[float]:
        cosine = 0.5 * (1.0 + math.cos(math.pi * self.last_epoch / self.max_iters))
        return [base_lr * self._warmup() * cosine for base_lr in self.base_lrs]
