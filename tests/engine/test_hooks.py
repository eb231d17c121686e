"""The hooks, each on a SimpleTrainer over a toy model."""
import json
import os

import pytest
import torch
from engine_helpers import ToyModel, make_model_and_optimizer, toy_batches
from fvcore.common.param_scheduler import MultiStepParamScheduler

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.engine import SimpleTrainer, hooks
from detectron2.solver import LRMultiplier
from detectron2.utils.events import EventWriter


def _trainer(lr=0.05, distinct=4):
    model, opt = make_model_and_optimizer(lr=lr)
    return SimpleTrainer(model, toy_batches(distinct=distinct), opt)


def test_callback_hook():
    calls = []
    trainer = _trainer()
    trainer.register_hooks(
        [
            hooks.CallbackHook(
                before_train=lambda t: calls.append(("bt", t.iter)),
                before_step=lambda t: calls.append(("bs", t.iter)),
                after_step=lambda t: calls.append(("as", t.iter)),
                after_train=lambda t: calls.append(("at", t.iter)),
            )
        ]
    )
    trainer.train(0, 2)
    assert calls == [("bt", 0), ("bs", 0), ("as", 0), ("bs", 1), ("as", 1), ("at", 2)]


def test_iteration_timer_skips_warmup():
    trainer = _trainer()
    trainer.register_hooks([hooks.IterationTimer(warmup_iter=2)])
    trainer.train(0, 6)
    iters = [it for _, it in trainer.storage.history("time").values()]
    assert iters == [1, 2, 3, 4, 5]  # iter_done = it + 1 >= 2
    assert all(t >= 0 for t, _ in trainer.storage.history("time").values())


class _CountingWriter(EventWriter):
    def __init__(self):
        self.writes, self.closed = [], False

    def write(self):
        from detectron2.utils.events import get_event_storage

        self.writes.append(get_event_storage().iter)

    def close(self):
        self.closed = True


def test_periodic_writer():
    writer = _CountingWriter()
    trainer = _trainer()
    trainer.register_hooks([hooks.PeriodicWriter([writer], period=3)])
    trainer.train(0, 8)
    assert writer.writes == [2, 5, 7, 8]  # every 3rd, the last one, then after_train
    assert writer.closed
    with pytest.raises(TypeError, match="EventWriter"):
        hooks.PeriodicWriter([object()])


def test_periodic_checkpointer_keeps_max_to_keep(tmp_path):
    trainer = _trainer()
    ckpt = DetectionCheckpointer(trainer.model, str(tmp_path), trainer=trainer)
    trainer.register_hooks([hooks.PeriodicCheckpointer(ckpt, period=2, max_to_keep=2)])
    trainer.train(0, 10)
    files = sorted(f for f in os.listdir(tmp_path) if f.endswith(".pth"))
    assert files == ["model_0000007.pth", "model_0000009.pth", "model_final.pth"]
    assert (tmp_path / "last_checkpoint").read_text() == "model_final.pth"
    saved = torch.load(tmp_path / "model_0000007.pth", weights_only=False)
    assert saved["iteration"] == 7 and saved["trainer"]["iteration"] == 7
    assert set(saved["model"]) == set(trainer.model.state_dict())


def test_lr_scheduler_hook_with_param_scheduler():
    trainer = _trainer(lr=0.1)
    sched = MultiStepParamScheduler([1.0, 0.1], milestones=[3], num_updates=6)
    trainer.register_hooks([hooks.LRScheduler(scheduler=sched)])
    trainer.train(0, 6)
    lrs = [v for v, _ in trainer.storage.history("lr").values()]
    assert lrs == pytest.approx([0.1, 0.1, 0.1, 0.01, 0.01, 0.01])
    state = trainer.state_dict()
    assert state["hooks"]["LRScheduler"]["last_epoch"] == 6


def test_lr_scheduler_hook_uses_trainer_scheduler():
    trainer = _trainer(lr=0.1)
    trainer.scheduler = torch.optim.lr_scheduler.StepLR(trainer.optimizer, step_size=1, gamma=0.5)
    trainer.register_hooks([hooks.LRScheduler()])
    trainer.train(0, 3)
    assert [v for v, _ in trainer.storage.history("lr").values()] == pytest.approx([0.1, 0.05, 0.025])


def test_best_param_group_id():
    ps = [torch.nn.Parameter(torch.zeros(1)) for _ in range(4)]
    opt = torch.optim.SGD([{"params": ps[:1], "lr": 1.0}, {"params": ps[1:3], "lr": 2.0}, {"params": ps[3:]}], lr=3.0)
    assert hooks.LRScheduler.get_best_param_group_id(opt) == 1  # the largest group
    opt = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(ps, [1.0, 2.0, 2.0, 3.0])])
    assert hooks.LRScheduler.get_best_param_group_id(opt) == 1  # the most common LR


def test_eval_hook_period_and_flattening():
    calls = []

    def evaluate():
        calls.append(trainer.iter)
        return {"bbox": {"AP": float(len(calls)), "AP50": 2.0}, "acc": 0.5}

    trainer = _trainer()
    trainer.register_hooks([hooks.EvalHook(3, evaluate)])
    trainer.train(0, 9)
    assert calls == [2, 5, 9]  # every 3rd; the last one once, after training
    latest = trainer.storage.latest()
    assert latest["bbox/AP"] == (3.0, 9) and latest["bbox/AP50"][0] == 2.0 and latest["acc"][0] == 0.5


@pytest.mark.parametrize("result,error", [([1.0], TypeError), ({"a": "high"}, ValueError)])
def test_eval_hook_rejects_bad_results(result, error):
    trainer = _trainer()
    trainer.register_hooks([hooks.EvalHook(0, lambda: result)])
    with pytest.raises(error):
        trainer.train(0, 2)


def test_best_checkpointer(tmp_path):
    scores = iter([0.3, 0.5, 0.4, float("nan"), 0.6])

    def evaluate():
        return {"bbox": {"AP": next(scores)}}

    trainer = _trainer()
    ckpt = DetectionCheckpointer(trainer.model, str(tmp_path))
    saved = []
    original_save = ckpt.save
    ckpt.save = lambda name, **kw: (saved.append((name, kw["iteration"])), original_save(name, **kw))
    best = hooks.BestCheckpointer(2, ckpt, "bbox/AP", mode="max")
    trainer.register_hooks([hooks.EvalHook(2, evaluate), best])
    trainer.train(0, 10)  # evaluations after iterations 1, 3, 5, 7 and the end
    assert saved == [("model_best", 1), ("model_best", 3), ("model_best", 10)]
    assert best.best_metric == 0.6 and best.best_iter == 10
    assert (tmp_path / "model_best.pth").exists()
    with pytest.raises(ValueError, match="mode"):
        hooks.BestCheckpointer(2, ckpt, "bbox/AP", mode="best")


def test_best_checkpointer_min_mode_and_missing_metric(tmp_path):
    scores = iter([3.0, 1.0, 2.0])
    trainer = _trainer()
    ckpt = DetectionCheckpointer(trainer.model, str(tmp_path))
    best = hooks.BestCheckpointer(2, ckpt, "loss", mode="min")
    missing = hooks.BestCheckpointer(2, ckpt, "not/there", file_prefix="never")
    trainer.register_hooks([hooks.EvalHook(2, lambda: {"loss": next(scores)}), best, missing])
    trainer.train(0, 6)
    assert best.best_metric == 1.0 and best.best_iter == 3
    assert missing.best_metric is None and not (tmp_path / "never.pth").exists()


def test_precise_bn_computes_true_statistics():
    torch.manual_seed(0)
    model = ToyModel()
    batches = [(torch.randn(8, 4) * 3 + 1, torch.zeros(8)) for _ in range(5)]
    hook = hooks.PreciseBN(0, model, batches, num_iter=5)
    hook.update_stats()
    data = torch.cat([x for x, _ in batches])
    assert torch.allclose(model.bn.running_mean, data.mean(0), atol=1e-5)
    # fvcore estimates the variance of all batches together (not the EMA's)
    assert torch.allclose(model.bn.running_var, data.var(0, unbiased=True), rtol=0.05)


def test_precise_bn_runs_at_the_end_and_disables_without_bn():
    trainer = _trainer()
    hook = hooks.PreciseBN(0, trainer.model, toy_batches(distinct=2), num_iter=2)
    trainer.register_hooks([hook])
    before = trainer.model.bn.running_mean.clone()
    trainer.train(0, 2)
    assert not torch.equal(before, trainer.model.bn.running_mean)

    no_bn = hooks.PreciseBN(1, torch.nn.Linear(2, 2), [], num_iter=2)
    no_bn.update_stats()  # a no-op
    assert no_bn._disabled


def test_torch_profiler_chrome_trace(tmp_path):
    trainer = _trainer()
    trainer.register_hooks(
        [hooks.TorchProfiler(lambda t: t.iter == 1, str(tmp_path), activities=[torch.profiler.ProfilerActivity.CPU], save_tensorboard=False)]
    )
    trainer.train(0, 3)
    assert sorted(os.listdir(tmp_path)) == ["profiler-trace-iter1.json"]
    with open(tmp_path / "profiler-trace-iter1.json") as f:
        assert "traceEvents" in json.load(f)


def test_autograd_profiler_is_deprecated_but_works(tmp_path):
    trainer = _trainer()
    with pytest.warns(DeprecationWarning):
        hook = hooks.AutogradProfiler(lambda t: t.iter == 0, str(tmp_path), use_cuda=False)
    trainer.register_hooks([hook])
    trainer.train(0, 2)
    assert os.listdir(tmp_path) == ["profiler-trace-iter0.json"]


def test_torch_memory_stats_is_quiet_without_cuda():
    trainer = _trainer()
    trainer.register_hooks([hooks.TorchMemoryStats(period=1)])
    trainer.train(0, 2)
    if not torch.cuda.is_available():
        assert "max_reserved_mem" not in trainer.storage.latest()


@pytest.mark.cuda
def test_torch_memory_stats_on_cuda():
    model = ToyModel().cuda()
    data = ((x.cuda(), y.cuda()) for x, y in toy_batches())
    trainer = SimpleTrainer(model, data, torch.optim.SGD(model.parameters(), lr=0.01))
    trainer.register_hooks([hooks.TorchMemoryStats(period=2, max_runs=1)])
    trainer.train(0, 6)
    history = trainer.storage.history("max_allocated_mem").values()
    assert [it for _, it in history] == [1, 3]  # runs 0 and 1, then max_runs reached
    assert all(v > 0 for v, _ in history)


def _resumable_trainer(tmp_path, seed=0):
    torch.manual_seed(seed)
    model = ToyModel()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    trainer = SimpleTrainer(model, toy_batches(distinct=1), opt)
    sched = LRMultiplier(opt, MultiStepParamScheduler([1.0, 0.1], milestones=[7], num_updates=10), max_iter=10)
    ckpt = DetectionCheckpointer(model, str(tmp_path), trainer=trainer)
    trainer.register_hooks([hooks.LRScheduler(scheduler=sched), hooks.PeriodicCheckpointer(ckpt, period=3)])
    return trainer, ckpt, sched


def test_resume_restores_iteration_scheduler_and_optimizer(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "resumed").mkdir()
    full, _, full_sched = _resumable_trainer(tmp_path / "full")
    full.train(0, 10)

    resumed, ckpt, sched = _resumable_trainer(tmp_path / "resumed", seed=1)  # other weights
    ckpt.load(str(tmp_path / "full" / "model_0000005.pth"))  # model, and trainer state
    assert resumed.iter == 5
    assert sched.last_epoch == 6
    resumed.train(resumed.iter + 1, 10)

    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6)
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(full.optimizer.param_groups[0]["lr"])
    lrs = [v for v, _ in resumed.storage.history("lr").values()]
    assert lrs == pytest.approx([0.05, 0.005, 0.005, 0.005])  # iterations 6..9, milestone at 7
