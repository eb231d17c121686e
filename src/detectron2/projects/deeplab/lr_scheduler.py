"""The "poly" learning-rate schedule of DeepLab, with warmup."""
import math
from typing import List

import torch

from detectron2.solver.lr_scheduler import _LegacyWarmupLR

__all__ = ["WarmupPolyLR"]


class WarmupPolyLR(_LegacyWarmupLR):
    """lr = base_lr * warmup(iter) * (1 - iter / max_iters) ** power. With
    ``constant_ending > 0``, once warmup is over the factor never drops below it."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        max_iters: int,
        warmup_factor: float = 0.001,
        warmup_iters: int = 1000,
        warmup_method: str = "linear",
        last_epoch: int = -1,
        power: float = 0.9,
        constant_ending: float = 0.0,
    ):
        if max_iters <= 0:
            raise ValueError(f"WarmupPolyLR: max_iters must be positive, got {max_iters}")
        self.max_iters = max_iters
        self.power = power
        self.constant_ending = constant_ending
        super().__init__(optimizer, warmup_factor, warmup_iters, warmup_method, last_epoch)

    def get_lr(self) -> List[float]:
        if self.last_epoch > self.max_iters:
            raise ValueError(
                f"WarmupPolyLR stepped to iteration {self.last_epoch}, past max_iters={self.max_iters}"
            )
        warmup = self._warmup()
        poly = math.pow(1.0 - self.last_epoch / self.max_iters, self.power)
        if self.constant_ending > 0 and warmup == 1.0 and poly < self.constant_ending:
            return [base_lr * self.constant_ending for base_lr in self.base_lrs]
        return [base_lr * warmup * poly for base_lr in self.base_lrs]
