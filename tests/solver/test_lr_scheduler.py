"""LR schedules: the values at given iterations equal upstream's closed-form formulas."""
import math

import pytest
import torch
from fvcore.common.param_scheduler import CosineParamScheduler, MultiStepParamScheduler

from detectron2.config import get_cfg
from detectron2.solver import (
    LRMultiplier,
    WarmupCosineLR,
    WarmupMultiStepLR,
    WarmupParamScheduler,
    build_lr_scheduler,
)

BASE_LR = 0.02


def _optimizer(lr=BASE_LR):
    p = torch.nn.Parameter(torch.zeros(1))
    return torch.optim.SGD([p], lr=lr, momentum=0.9)


def _lrs(scheduler, optimizer, n):
    """The LR used at iterations 0 .. n-1 (the scheduler steps after each)."""
    out = []
    for _ in range(n):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def _linear_warmup(t, warmup_iters=1000, factor=0.001):
    if t >= warmup_iters:
        return 1.0
    alpha = t / warmup_iters
    return factor * (1 - alpha) + alpha


def _cfg(**solver):
    cfg = get_cfg()
    cfg.SOLVER.BASE_LR = BASE_LR
    for k, v in solver.items():
        setattr(cfg.SOLVER, k, v)
    return cfg


CHECK_ITERS = [0, 1, 250, 500, 999, 1000, 1001, 1999, 2000, 2001, 2499, 2500, 2999]


def test_multistep_with_linear_warmup_matches_formula():
    cfg = _cfg(MAX_ITER=3000, STEPS=(2000, 2500), GAMMA=0.1, WARMUP_ITERS=1000, WARMUP_FACTOR=0.001)
    opt = _optimizer()
    lrs = _lrs(build_lr_scheduler(cfg, opt), opt, 3000)
    for t in CHECK_ITERS:
        decay = 0.1 ** sum(t >= s for s in (2000, 2500))
        assert lrs[t] == pytest.approx(BASE_LR * _linear_warmup(t) * decay, rel=1e-9), t
    assert lrs[0] == pytest.approx(BASE_LR * 0.001)


def test_steps_beyond_max_iter_are_ignored():
    cfg = _cfg(MAX_ITER=100, STEPS=(50, 200), WARMUP_ITERS=0)
    opt = _optimizer()
    lrs = _lrs(build_lr_scheduler(cfg, opt), opt, 100)
    assert lrs[49] == pytest.approx(BASE_LR)
    assert lrs[99] == pytest.approx(BASE_LR * 0.1)


def test_cosine_with_warmup_matches_formula():
    max_iter, warmup = 3000, 1000
    cfg = _cfg(LR_SCHEDULER_NAME="WarmupCosineLR", MAX_ITER=max_iter, WARMUP_ITERS=warmup, BASE_LR_END=0.0)
    opt = _optimizer()
    lrs = _lrs(build_lr_scheduler(cfg, opt), opt, max_iter)

    def cosine(t):
        return 0.5 * (1 + math.cos(math.pi * t / max_iter))

    for t in CHECK_ITERS:
        if t >= warmup:
            expected = cosine(t)
        else:  # linear from 0.001 * cosine(0) to the cosine's value where warmup ends
            start, end = 0.001 * cosine(0), cosine(warmup)
            expected = start + (end - start) * t / warmup
        assert lrs[t] == pytest.approx(BASE_LR * expected, rel=1e-9), t


def test_cosine_end_value():
    cfg = _cfg(LR_SCHEDULER_NAME="WarmupCosineLR", MAX_ITER=100, WARMUP_ITERS=0, BASE_LR_END=0.002)
    opt = _optimizer()
    lrs = _lrs(build_lr_scheduler(cfg, opt), opt, 100)
    end = 0.002 / BASE_LR
    expected = end + 0.5 * (1 - end) * (1 + math.cos(math.pi * 99 / 100))
    assert lrs[99] == pytest.approx(BASE_LR * expected)
    cfg.SOLVER.BASE_LR_END = 1.0  # larger than BASE_LR
    with pytest.raises(AssertionError, match="BASE_LR_END"):  # upstream asserts
        build_lr_scheduler(cfg, _optimizer())


def test_step_with_fixed_gamma():
    cfg = _cfg(LR_SCHEDULER_NAME="WarmupStepWithFixedGammaLR", MAX_ITER=4000, NUM_DECAYS=3, GAMMA=0.1, WARMUP_ITERS=10)
    opt = _optimizer()
    lrs = _lrs(build_lr_scheduler(cfg, opt), opt, 4000)
    for t, k in [(500, 0), (999, 0), (1000, 1), (1500, 1), (2500, 2), (3999, 3)]:
        assert lrs[t] == pytest.approx(BASE_LR * 0.1**k), t


def test_constant_warmup_and_unknown_names():
    cfg = _cfg(MAX_ITER=100, STEPS=(), WARMUP_ITERS=10, WARMUP_METHOD="constant", WARMUP_FACTOR=0.5)
    opt = _optimizer()
    lrs = _lrs(build_lr_scheduler(cfg, opt), opt, 20)
    assert lrs[0] == lrs[9] == pytest.approx(BASE_LR * 0.5)
    assert lrs[10] == pytest.approx(BASE_LR)
    with pytest.raises(ValueError, match="Unknown LR scheduler"):
        build_lr_scheduler(_cfg(LR_SCHEDULER_NAME="Nope"), _optimizer())
    with pytest.raises(ValueError, match="warmup_method"):
        build_lr_scheduler(_cfg(WARMUP_METHOD="exp"), _optimizer())


def test_rescale_interval():
    # The main schedule runs over the post-warmup part rescaled to [0, 1].
    sched = WarmupParamScheduler(CosineParamScheduler(1, 0), 0.1, 0.5, rescale_interval=True)
    assert sched(0.0) == pytest.approx(0.1)
    assert sched(0.5) == pytest.approx(1.0)
    assert sched(0.75) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="warmup_length"):
        WarmupParamScheduler(CosineParamScheduler(1, 0), 0.1, 1.5)


def test_lr_multiplier_state_and_groups():
    p1, p2 = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [p1], "lr": 1.0}, {"params": [p2], "lr": 2.0}], lr=1.0)
    mult = MultiStepParamScheduler([1, 0.5], milestones=[5], num_updates=10)
    sched = LRMultiplier(opt, mult, max_iter=10)
    for _ in range(6):
        opt.step()
        sched.step()
    assert [g["lr"] for g in opt.param_groups] == [0.5, 1.0]
    state = sched.state_dict()
    assert state == {"base_lrs": [1.0, 2.0], "last_epoch": 6}

    opt2 = torch.optim.SGD([{"params": [p1], "lr": 1.0}, {"params": [p2], "lr": 2.0}], lr=1.0)
    resumed = LRMultiplier(opt2, mult, max_iter=10)
    resumed.load_state_dict(state)
    assert resumed.last_epoch == 6
    with pytest.raises(ValueError, match="multiplier"):  # upstream's type
        LRMultiplier(opt, lambda x: 1.0, max_iter=10)
    with pytest.raises(TypeError, match="multiplier"):
        LRMultiplier(opt, lambda x: 1.0, max_iter=10)
    with pytest.raises(ValueError, match="max_iter"):
        LRMultiplier(opt, mult, max_iter=0)


def test_legacy_warmup_multistep_lr():
    opt = _optimizer()
    with pytest.warns(DeprecationWarning):
        sched = WarmupMultiStepLR(opt, milestones=[2000, 2500], gamma=0.1)
    lrs = _lrs(sched, opt, 3000)
    for t in CHECK_ITERS:
        decay = 0.1 ** sum(t >= s for s in (2000, 2500))
        assert lrs[t] == pytest.approx(BASE_LR * _linear_warmup(t) * decay, rel=1e-9), t
    with pytest.raises(ValueError, match="milestones"):
        WarmupMultiStepLR(_optimizer(), milestones=[5, 2])


def test_legacy_warmup_cosine_lr():
    opt = _optimizer()
    with pytest.warns(DeprecationWarning):
        sched = WarmupCosineLR(opt, max_iters=3000)
    lrs = _lrs(sched, opt, 3000)
    for t in CHECK_ITERS:
        # The legacy class multiplies the warmup factor into the cosine.
        expected = _linear_warmup(t) * 0.5 * (1 + math.cos(math.pi * t / 3000))
        assert lrs[t] == pytest.approx(BASE_LR * expected, rel=1e-9), t


def _final_lr(scheduler, optimizer, max_iter):
    """The LR after the trainer's step following the last iteration (where = 1.0)."""
    _lrs(scheduler, optimizer, max_iter)
    return optimizer.param_groups[0]["lr"]


@pytest.mark.parametrize("max_iter", [7, 100, 3000])
def test_schedules_end_on_their_end_value(max_iter):
    # Upstream evaluates the multiplier at last_iter / max_iter, so after the last
    # iteration's step the cosine is exactly at its end value.
    for end in (0.0, 0.002):
        cfg = _cfg(LR_SCHEDULER_NAME="WarmupCosineLR", MAX_ITER=max_iter, WARMUP_ITERS=max_iter // 3, BASE_LR_END=end)
        opt = _optimizer()
        assert _final_lr(build_lr_scheduler(cfg, opt), opt, max_iter) == pytest.approx(end, abs=1e-15)
    cfg = _cfg(MAX_ITER=max_iter, STEPS=(max_iter // 2,), GAMMA=0.1, WARMUP_ITERS=0)
    opt = _optimizer()
    assert _final_lr(build_lr_scheduler(cfg, opt), opt, max_iter) == pytest.approx(BASE_LR * 0.1)
    # Generic: the LR at every step equals base_lr * multiplier(step / max_iter).
    mult = WarmupParamScheduler(CosineParamScheduler(1, 0), 0.01, 0.2)
    opt = _optimizer()
    sched = LRMultiplier(opt, mult, max_iter=max_iter)
    for it in range(1, max_iter + 1):
        opt.step()
        sched.step()
        assert opt.param_groups[0]["lr"] == BASE_LR * mult(it / max_iter), it


def test_stepping_past_max_iter_raises_like_upstream():
    # fvcore's MultiStepParamScheduler refuses where > 1, as upstream's LRMultiplier passes it.
    cfg = _cfg(MAX_ITER=50, STEPS=(30,), WARMUP_ITERS=5)
    opt = _optimizer()
    sched = build_lr_scheduler(cfg, opt)
    _lrs(sched, opt, 50)
    opt.step()
    with pytest.raises(RuntimeError, match="where"):
        sched.step()
    # Resuming past the end raises as well.
    fresh = _optimizer()
    fresh.param_groups[0]["initial_lr"] = BASE_LR  # as loaded from a checkpoint
    with pytest.raises(RuntimeError, match="where"):
        LRMultiplier(fresh, MultiStepParamScheduler([1, 0.1], milestones=[30], num_updates=50), 50, last_iter=60)


def test_step_with_fixed_gamma_last_step_holds_last_value():
    # fvcore's step schedule indexes past its end at exactly where == 1.0; the step after
    # the last iteration keeps the last value instead of stopping training, later ones raise.
    cfg = _cfg(LR_SCHEDULER_NAME="WarmupStepWithFixedGammaLR", MAX_ITER=40, NUM_DECAYS=3, GAMMA=0.1, WARMUP_ITERS=4)
    opt = _optimizer()
    sched = build_lr_scheduler(cfg, opt)
    assert _final_lr(sched, opt, 40) == pytest.approx(BASE_LR * 0.1**3)
    opt.step()
    with pytest.raises(IndexError):
        sched.step()
