"""The LR scheduler of DeepLab's configs: WarmupPolyLR, else detectron2's own."""
import torch

from detectron2.config import CfgNode
from detectron2.solver import build_lr_scheduler as build_d2_lr_scheduler

from .lr_scheduler import WarmupPolyLR

__all__ = ["build_lr_scheduler"]


def build_lr_scheduler(cfg: CfgNode, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler._LRScheduler:
    """WarmupPolyLR when SOLVER.LR_SCHEDULER_NAME is "WarmupPolyLR" (needs
    add_deeplab_config), otherwise :func:`detectron2.solver.build_lr_scheduler`."""
    if cfg.SOLVER.LR_SCHEDULER_NAME == "WarmupPolyLR":
        return WarmupPolyLR(
            optimizer,
            cfg.SOLVER.MAX_ITER,
            warmup_factor=cfg.SOLVER.WARMUP_FACTOR,
            warmup_iters=cfg.SOLVER.WARMUP_ITERS,
            warmup_method=cfg.SOLVER.WARMUP_METHOD,
            power=cfg.SOLVER.POLY_LR_POWER,
            constant_ending=cfg.SOLVER.POLY_LR_CONSTANT_ENDING,
        )
    return build_d2_lr_scheduler(cfg, optimizer)
