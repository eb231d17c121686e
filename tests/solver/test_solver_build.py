"""Optimizer building: per-parameter options, deduplication, gradient clipping."""
import pytest
import torch
from torch import nn

from detectron2.config import get_cfg
from detectron2.solver import build_optimizer, get_default_optimizer_params
from detectron2.solver.build import maybe_add_gradient_clipping, reduce_param_groups


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, 2)
        self.tied = self.head  # the same parameters reachable twice
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)


def _options_of(groups, param):
    matches = [g for g in groups if any(p is param for p in g["params"])]
    assert len(matches) == 1, "each parameter is in exactly one group"
    return {k: v for k, v in matches[0].items() if k != "params"}


def test_default_params_options_and_dedup():
    net = _Net()
    groups = get_default_optimizer_params(
        net, base_lr=0.1, weight_decay=1e-4, weight_decay_norm=0.0, bias_lr_factor=2.0, weight_decay_bias=0.5
    )
    params = [p for g in groups for p in g["params"]]
    trainable = [p for p in net.parameters() if p.requires_grad]  # parameters() dedups
    assert len(params) == len(trainable) == 6
    assert {id(p) for p in params} == {id(p) for p in trainable}

    assert _options_of(groups, net.conv.weight) == {"lr": 0.1, "weight_decay": 1e-4}
    assert _options_of(groups, net.conv.bias) == {"lr": 0.2, "weight_decay": 0.5}
    assert _options_of(groups, net.bn.weight) == {"lr": 0.1, "weight_decay": 0.0}
    # bias overrides beat the norm weight decay (overrides apply last)
    assert _options_of(groups, net.bn.bias) == {"lr": 0.2, "weight_decay": 0.5}
    # groups with the same options are merged
    assert len(groups) == 3


def test_overrides_and_lr_factor_func():
    net = _Net()
    groups = get_default_optimizer_params(
        net,
        base_lr=1.0,
        overrides={"weight": {"weight_decay": 0.0}},
        lr_factor_func=lambda name: 0.5 if name.startswith("conv.") else 1.0,
    )
    assert _options_of(groups, net.conv.weight) == {"lr": 0.5, "weight_decay": 0.0}
    assert _options_of(groups, net.conv.bias) == {"lr": 0.5}
    assert _options_of(groups, net.head.bias) == {"lr": 1.0}


def test_bad_arguments():
    net = _Net()
    with pytest.raises(ValueError, match="bias_lr_factor requires base_lr"):
        get_default_optimizer_params(net, bias_lr_factor=2.0)
    with pytest.raises(ValueError, match="lr_factor_func requires base_lr"):
        get_default_optimizer_params(net, lr_factor_func=lambda n: 1.0)
    with pytest.raises(ValueError, match="Conflicting overrides for 'bias'"):
        get_default_optimizer_params(net, base_lr=1.0, weight_decay_bias=0.0, overrides={"bias": {"lr": 1.0}})


def test_reduce_param_groups_merges_in_order():
    a, b, c = (nn.Parameter(torch.zeros(1)) for _ in range(3))
    groups = reduce_param_groups(
        [{"params": [a], "lr": 1.0}, {"params": [b, c], "lr": 2.0}, {"params": [c], "lr": 1.0}]
    )
    # c's later group wins, and c joins a's group
    assert [g["lr"] for g in groups] == [1.0, 2.0]
    assert groups[0]["params"] == [a, c] and groups[1]["params"] == [b]
    with pytest.raises(ValueError, match="params"):
        reduce_param_groups([{"lr": 1.0}])


def _solver_cfg(**kw):
    cfg = get_cfg()
    cfg.SOLVER.BASE_LR = 1.0
    cfg.SOLVER.MOMENTUM = 0.0
    cfg.SOLVER.WEIGHT_DECAY = 0.0
    for k, v in kw.items():
        setattr(cfg.SOLVER, k, v)
    return cfg


def test_build_optimizer_sgd_and_adamw():
    net = _Net()
    cfg = get_cfg()
    cfg.SOLVER.NESTEROV = True
    opt = build_optimizer(cfg, net)
    assert type(opt) is torch.optim.SGD
    g = opt.param_groups[0]
    assert g["momentum"] == cfg.SOLVER.MOMENTUM and g["nesterov"] and g["lr"] == cfg.SOLVER.BASE_LR
    norm_group = _options_of(opt.param_groups, net.bn.weight)
    assert norm_group["weight_decay"] == cfg.SOLVER.WEIGHT_DECAY_NORM

    cfg.SOLVER.OPTIMIZER = "ADAMW"
    assert isinstance(build_optimizer(cfg, net), torch.optim.AdamW)
    cfg.SOLVER.OPTIMIZER = "LAMB"
    with pytest.raises(ValueError, match="SOLVER.OPTIMIZER"):
        build_optimizer(cfg, net)


class _TwoScalars(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.zeros(1))
        self.b = nn.Parameter(torch.zeros(1))


def _step_with_grads(cfg, grad_a, grad_b):
    """Parameter values after one SGD step (lr 1) with the given gradients."""
    net = _TwoScalars()
    opt = build_optimizer(cfg, net)
    net.a.grad = torch.tensor([grad_a])
    net.b.grad = torch.tensor([grad_b])
    opt.step()
    return -net.a.item(), -net.b.item()


@pytest.mark.parametrize(
    "clip_type,expected",
    [
        ("value", (1.0, 1.0)),  # each element clipped to [-1, 1]
        ("norm", (1.0, 1.0)),  # each parameter's norm clipped to 1
        ("full_model", (0.6, 0.8)),  # the norm of all gradients together clipped to 1
    ],
)
def test_gradient_clipping(clip_type, expected):
    cfg = _solver_cfg()
    cfg.SOLVER.CLIP_GRADIENTS.ENABLED = True
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = clip_type
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 1.0
    assert _step_with_grads(cfg, 3.0, 4.0) == pytest.approx(expected)


def test_no_clipping_by_default():
    assert _step_with_grads(_solver_cfg(), 3.0, 4.0) == pytest.approx((3.0, 4.0))


def test_clipping_wraps_class_or_instance():
    cfg = _solver_cfg()
    cfg.SOLVER.CLIP_GRADIENTS.ENABLED = True
    cls = maybe_add_gradient_clipping(cfg, torch.optim.SGD)
    assert issubclass(cls, torch.optim.SGD) and cls.__name__ == "SGDWithGradientClip"
    opt = torch.optim.SGD(_TwoScalars().parameters(), lr=1.0)
    assert maybe_add_gradient_clipping(cfg, opt) is opt
    assert type(opt).__name__ == "SGDWithGradientClip"
    with pytest.raises(TypeError, match="optimizer"):
        maybe_add_gradient_clipping(cfg, "SGD")
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "percentile"
    with pytest.raises(ValueError, match="CLIP_TYPE"):
        build_optimizer(cfg, _TwoScalars())
