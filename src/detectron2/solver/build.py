"""Optimizers and LR schedulers built from a config, with per-parameter options."""
import copy
import itertools
import logging
from collections import defaultdict
from enum import Enum
from typing import Any, Callable, Dict, Iterable, List, Optional, Set, Type, Union

import torch
from fvcore.common.param_scheduler import (
    CosineParamScheduler,
    MultiStepParamScheduler,
    StepWithFixedGammaParamScheduler,
)

from detectron2.config import CfgNode
from detectron2.layers._errors import ValueAssertionError
from detectron2.utils.env import TORCH_VERSION

from .lr_scheduler import LRMultiplier, LRScheduler, WarmupParamScheduler

__all__ = [
    "GradientClipType",
    "build_optimizer",
    "build_lr_scheduler",
    "get_default_optimizer_params",
    "maybe_add_gradient_clipping",
    "reduce_param_groups",
]

_GradientClipperInput = Union[torch.Tensor, Iterable[torch.Tensor]]
_GradientClipper = Callable[[_GradientClipperInput], None]

logger = logging.getLogger(__name__)


class GradientClipType(Enum):
    """SOLVER.CLIP_GRADIENTS.CLIP_TYPE: "value" and "norm" clip each parameter's
    gradient on its own; "full_model" clips the norm of all gradients together."""

    VALUE = "value"
    NORM = "norm"
    FULL_MODEL = "full_model"


def _create_gradient_clipper(cfg: CfgNode) -> _GradientClipper:
    """A clipper for the SOLVER.CLIP_GRADIENTS node ``cfg``."""
    cfg = copy.deepcopy(cfg)

    def clip_grad_norm(p: _GradientClipperInput) -> None:
        torch.nn.utils.clip_grad_norm_(p, cfg.CLIP_VALUE, cfg.NORM_TYPE)

    def clip_grad_value(p: _GradientClipperInput) -> None:
        torch.nn.utils.clip_grad_value_(p, cfg.CLIP_VALUE)

    clippers = {
        GradientClipType.VALUE: clip_grad_value,
        GradientClipType.NORM: clip_grad_norm,
        GradientClipType.FULL_MODEL: clip_grad_norm,
    }
    return clippers[_clip_type(cfg)]


def _clip_type(cfg: CfgNode) -> GradientClipType:
    try:
        return GradientClipType(cfg.CLIP_TYPE)
    except ValueError:
        valid = ", ".join(repr(t.value) for t in GradientClipType)
        raise ValueError(f"SOLVER.CLIP_GRADIENTS.CLIP_TYPE must be one of {valid}, got {cfg.CLIP_TYPE!r}") from None


def _generate_optimizer_class_with_gradient_clipping(
    optimizer: Type[torch.optim.Optimizer],
    *,
    per_param_clipper: Optional[_GradientClipper] = None,
    global_clipper: Optional[_GradientClipper] = None,
) -> Type[torch.optim.Optimizer]:
    """A subclass of ``optimizer`` whose step() clips gradients first: each parameter
    with ``per_param_clipper``, or all of them at once with ``global_clipper``."""
    if (per_param_clipper is None) == (global_clipper is None):
        raise ValueError("Give exactly one of per_param_clipper and global_clipper")

    @torch.no_grad()
    def optimizer_wgc_step(self, closure=None):
        if per_param_clipper is not None:
            for group in self.param_groups:
                for p in group["params"]:
                    per_param_clipper(p)
        else:
            all_params = itertools.chain(*[g["params"] for g in self.param_groups])
            global_clipper(all_params)
        return super(OptimizerWithGradientClip, self).step(closure)

    OptimizerWithGradientClip = type(
        optimizer.__name__ + "WithGradientClip",
        (optimizer,),
        {"step": optimizer_wgc_step},
    )
    return OptimizerWithGradientClip


def maybe_add_gradient_clipping(
    cfg: CfgNode, optimizer: Union[Type[torch.optim.Optimizer], torch.optim.Optimizer]
) -> Union[Type[torch.optim.Optimizer], torch.optim.Optimizer]:
    """Add gradient clipping per cfg.SOLVER.CLIP_GRADIENTS to an optimizer class (returns
    a subclass) or instance (its class is swapped in place). Unchanged when disabled."""
    if not cfg.SOLVER.CLIP_GRADIENTS.ENABLED:
        return optimizer
    if isinstance(optimizer, torch.optim.Optimizer):
        optimizer_type = type(optimizer)
    elif isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer):
        optimizer_type = optimizer
    else:
        raise TypeError(f"optimizer must be a torch.optim.Optimizer class or instance, got {optimizer!r}")

    clipper = _create_gradient_clipper(cfg.SOLVER.CLIP_GRADIENTS)
    if _clip_type(cfg.SOLVER.CLIP_GRADIENTS) == GradientClipType.FULL_MODEL:
        new_type = _generate_optimizer_class_with_gradient_clipping(optimizer_type, global_clipper=clipper)
    else:
        new_type = _generate_optimizer_class_with_gradient_clipping(optimizer_type, per_param_clipper=clipper)
    if isinstance(optimizer, torch.optim.Optimizer):
        optimizer.__class__ = new_type
        return optimizer
    return new_type


def build_optimizer(cfg: CfgNode, model: torch.nn.Module) -> torch.optim.Optimizer:
    """SGD with momentum (or AdamW when the optional key cfg.SOLVER.OPTIMIZER is
    "ADAMW", as upstream projects add it) over ``model``'s parameters, with the
    per-parameter options and gradient clipping of cfg.SOLVER."""
    params = get_default_optimizer_params(
        model,
        base_lr=cfg.SOLVER.BASE_LR,
        weight_decay_norm=cfg.SOLVER.WEIGHT_DECAY_NORM,
        bias_lr_factor=cfg.SOLVER.BIAS_LR_FACTOR,
        weight_decay_bias=cfg.SOLVER.WEIGHT_DECAY_BIAS,
    )
    name = str(cfg.SOLVER.get("OPTIMIZER", "SGD")).upper()
    if name == "SGD":
        kwargs = dict(
            params=params,
            lr=cfg.SOLVER.BASE_LR,
            momentum=cfg.SOLVER.MOMENTUM,
            nesterov=cfg.SOLVER.NESTEROV,
            weight_decay=cfg.SOLVER.WEIGHT_DECAY,
        )
        optimizer_type = torch.optim.SGD
    elif name == "ADAMW":
        kwargs = dict(params=params, lr=cfg.SOLVER.BASE_LR, weight_decay=cfg.SOLVER.WEIGHT_DECAY)
        optimizer_type = torch.optim.AdamW
    else:
        raise ValueError(f"cfg.SOLVER.OPTIMIZER must be 'SGD' or 'ADAMW', got {cfg.SOLVER.OPTIMIZER!r}")
    if TORCH_VERSION >= (1, 12):
        kwargs["foreach"] = True  # one fused update over all tensors: much faster
    return maybe_add_gradient_clipping(cfg, optimizer_type)(**kwargs)


_NORM_MODULE_TYPES = (
    torch.nn.BatchNorm1d,
    torch.nn.BatchNorm2d,
    torch.nn.BatchNorm3d,
    torch.nn.SyncBatchNorm,
    torch.nn.GroupNorm,
    torch.nn.InstanceNorm1d,
    torch.nn.InstanceNorm2d,
    torch.nn.InstanceNorm3d,
    torch.nn.LayerNorm,
    torch.nn.LocalResponseNorm,
)


def get_default_optimizer_params(
    model: torch.nn.Module,
    base_lr: Optional[float] = None,
    weight_decay: Optional[float] = None,
    weight_decay_norm: Optional[float] = None,
    bias_lr_factor: Optional[float] = 1.0,
    weight_decay_bias: Optional[float] = None,
    lr_factor_func: Optional[Callable[[str], float]] = None,
    overrides: Optional[Dict[str, Dict[str, float]]] = None,
) -> List[Dict[str, Any]]:
    """Param groups for an optimizer, with per-parameter hyperparameters.

    Args:
        model: every trainable parameter of it is included once (shared ones too).
        base_lr: the LR of every group (None: the optimizer's default).
        weight_decay: the weight decay of every group (None: the optimizer's default).
        weight_decay_norm: weight decay of the parameters of normalization layers.
        bias_lr_factor: LR multiplier of parameters named "bias".
        weight_decay_bias: weight decay of parameters named "bias".
        lr_factor_func: maps a full parameter name ("backbone.res2.conv1.weight") to an
            LR multiplier (e.g. layer-wise decay).
        overrides: by parameter name within its module ("bias", "embedding", ...), a
            dict of hyperparameters that replace the defaults.

    Returns:
        A list of param groups for torch.optim.Optimizer, parameters with equal
        hyperparameters merged into one group.
    """
    overrides = dict(overrides) if overrides else {}
    defaults: Dict[str, Any] = {}
    if base_lr is not None:
        defaults["lr"] = base_lr
    if weight_decay is not None:
        defaults["weight_decay"] = weight_decay
    bias_overrides: Dict[str, float] = {}
    if bias_lr_factor is not None and bias_lr_factor != 1.0:
        if base_lr is None:
            raise ValueError("bias_lr_factor requires base_lr")
        bias_overrides["lr"] = base_lr * bias_lr_factor
    if weight_decay_bias is not None:
        bias_overrides["weight_decay"] = weight_decay_bias
    if bias_overrides:
        if "bias" in overrides:
            raise ValueError("Conflicting overrides for 'bias': give either overrides['bias'] or the bias_* arguments")
        overrides["bias"] = bias_overrides
    if lr_factor_func is not None and base_lr is None:
        raise ValueError("lr_factor_func requires base_lr")

    params: List[Dict[str, Any]] = []
    memo: Set[torch.nn.parameter.Parameter] = set()
    for module_name, module in model.named_modules():
        for param_name, value in module.named_parameters(recurse=False):
            if not value.requires_grad or value in memo:
                continue  # frozen, or shared and already placed
            memo.add(value)
            hyperparams = copy.copy(defaults)
            if isinstance(module, _NORM_MODULE_TYPES) and weight_decay_norm is not None:
                hyperparams["weight_decay"] = weight_decay_norm
            if lr_factor_func is not None:
                hyperparams["lr"] *= lr_factor_func(f"{module_name}.{param_name}")
            hyperparams.update(overrides.get(param_name, {}))
            params.append({"params": [value], **hyperparams})
    return reduce_param_groups(params)


def _expand_param_groups(params: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """One group per parameter; a parameter in several groups gets their merged options."""
    by_param: Dict[torch.nn.Parameter, Dict[str, Any]] = defaultdict(dict)
    for group in params:
        if "params" not in group:
            raise ValueError(f"Every param group needs a 'params' entry, got keys {sorted(group)}")
        options = {k: v for k, v in group.items() if k not in ("params", "param_names")}
        names = group.get("param_names")
        for i, p in enumerate(group["params"]):
            entry = by_param[p]
            entry.update({"params": [p], **options})
            if names is not None:
                entry["param_names"] = [names[i]]
    return list(by_param.values())


def reduce_param_groups(params: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Merge param groups with identical options into one group each (fewer groups make
    the optimizer faster), keeping the order in which options first appear."""
    merged: Dict[tuple, Dict[str, Any]] = {}
    for item in _expand_param_groups(params):
        key = tuple((k, v) for k, v in item.items() if k not in ("params", "param_names"))
        group = merged.setdefault(key, {**dict(key), "params": []})
        group["params"].extend(item["params"])
        if "param_names" in item:
            group.setdefault("param_names", []).extend(item["param_names"])
    return list(merged.values())


def build_lr_scheduler(cfg: CfgNode, optimizer: torch.optim.Optimizer) -> LRScheduler:
    """The LR scheduler named by cfg.SOLVER.LR_SCHEDULER_NAME ("WarmupMultiStepLR",
    "WarmupCosineLR" or "WarmupStepWithFixedGammaLR"), with cfg.SOLVER's warmup."""
    name = cfg.SOLVER.LR_SCHEDULER_NAME
    max_iter = cfg.SOLVER.MAX_ITER
    if name == "WarmupMultiStepLR":
        steps = [x for x in cfg.SOLVER.STEPS if x <= max_iter]
        if len(steps) != len(cfg.SOLVER.STEPS):
            logger.warning("SOLVER.STEPS contains values larger than SOLVER.MAX_ITER. These values will be ignored.")
        sched = MultiStepParamScheduler(
            values=[cfg.SOLVER.GAMMA**k for k in range(len(steps) + 1)],
            milestones=steps,
            num_updates=max_iter,
        )
    elif name == "WarmupCosineLR":
        end_value = cfg.SOLVER.BASE_LR_END / cfg.SOLVER.BASE_LR
        if not 0.0 <= end_value <= 1.0:
            # upstream asserts this
            raise ValueAssertionError(
                f"SOLVER.BASE_LR_END must be in [0, SOLVER.BASE_LR], got {cfg.SOLVER.BASE_LR_END}"
            )
        sched = CosineParamScheduler(1, end_value)
    elif name == "WarmupStepWithFixedGammaLR":
        sched = StepWithFixedGammaParamScheduler(
            base_value=1.0,
            gamma=cfg.SOLVER.GAMMA,
            num_decays=cfg.SOLVER.NUM_DECAYS,
            num_updates=max_iter,
        )
    else:
        raise ValueError(f"Unknown LR scheduler: {name}")

    sched = WarmupParamScheduler(
        sched,
        cfg.SOLVER.WARMUP_FACTOR,
        min(cfg.SOLVER.WARMUP_ITERS / max_iter, 1.0),
        cfg.SOLVER.WARMUP_METHOD,
        cfg.SOLVER.RESCALE_INTERVAL,
    )
    return LRMultiplier(optimizer, multiplier=sched, max_iter=max_iter)
