"""TrainerBase / SimpleTrainer / AMPTrainer: hook order, metrics, errors, state."""
import math
import random

import numpy as np
import pytest
import torch
from engine_helpers import ToyModel, make_model_and_optimizer, toy_batches

from detectron2.engine import AMPTrainer, HookBase, SimpleTrainer, TrainerBase


class _Recorder(HookBase):
    def __init__(self, name, log):
        self.name, self.log = name, log

    def before_train(self):
        self.log.append((self.name, "before_train", self.trainer.iter))

    def after_train(self):
        self.log.append((self.name, "after_train", self.trainer.iter))

    def before_step(self):
        self.log.append((self.name, "before_step", self.trainer.iter))

    def after_backward(self):
        self.log.append((self.name, "after_backward", self.trainer.iter))

    def after_step(self):
        self.log.append((self.name, "after_step", self.trainer.iter))


def _trainer(**kwargs):
    model, opt = make_model_and_optimizer()
    return SimpleTrainer(model, toy_batches(), opt, **kwargs)


def test_hooks_fire_in_order():
    log = []
    trainer = _trainer()
    trainer.register_hooks([_Recorder("a", log), None, _Recorder("b", log)])
    trainer.train(5, 7)
    expected = [("a", "before_train", 5), ("b", "before_train", 5)]
    for it in (5, 6):
        for event in ("before_step", "after_backward", "after_step"):
            expected += [("a", event, it), ("b", event, it)]
    expected += [("a", "after_train", 7), ("b", "after_train", 7)]
    assert log == expected
    assert trainer.iter == 7 and trainer.start_iter == 5 and trainer.max_iter == 7


def test_trainer_base_is_abstract_and_hooks_are_checked():
    with pytest.raises(TypeError):
        TrainerBase()
    with pytest.raises(TypeError, match="HookBase"):
        _trainer().register_hooks([lambda t: None])


def test_after_train_runs_when_a_step_fails():
    log = []

    class Boom(HookBase):
        def after_step(self):
            if self.trainer.iter == 2:
                raise RuntimeError("boom")

    trainer = _trainer()
    trainer.register_hooks([Boom(), _Recorder("r", log)])
    with pytest.raises(RuntimeError, match="boom"):
        trainer.train(0, 10)
    assert log[-1] == ("r", "after_train", 2)


def test_simple_trainer_writes_metrics_and_learns():
    trainer = _trainer()
    trainer.train(0, 30)
    storage = trainer.storage
    latest = storage.latest()
    for key in ("total_loss", "loss_mse", "loss_l1", "data_time", "rank_data_time"):
        assert key in latest, key
    total = storage.history("total_loss").values()
    assert len(total) == 30
    assert total[-1][0] < total[0][0] * 0.5
    # total_loss is the sum of the named losses
    assert latest["total_loss"][0] == pytest.approx(latest["loss_mse"][0] + latest["loss_l1"][0])


def test_gather_metric_period_and_tensor_output():
    trainer = _trainer(gather_metric_period=3)
    trainer.train(0, 9)
    assert [it for _, it in trainer.storage.history("total_loss").values()] == [2, 5, 8]

    class SingleLoss(ToyModel):
        def forward(self, batch):
            return sum(super().forward(batch).values())

    model = SingleLoss()
    trainer = SimpleTrainer(model, toy_batches(), torch.optim.SGD(model.parameters(), lr=0.01))
    trainer.train(0, 2)
    assert "total_loss" in trainer.storage.latest()
    with pytest.raises(ValueError, match="gather_metric_period"):
        _trainer(gather_metric_period=0)


def test_model_output_must_be_losses():
    class Bad(ToyModel):
        def forward(self, batch):
            return [1.0]

    model = Bad()
    trainer = SimpleTrainer(model, toy_batches(), torch.optim.SGD(model.parameters(), lr=0.01))
    with pytest.raises(TypeError, match="dict of losses"):
        trainer.train(0, 1)


class _NaNAt(ToyModel):
    def __init__(self, bad_iter):
        super().__init__()
        self.calls, self.bad_iter = 0, bad_iter

    def forward(self, batch):
        losses = super().forward(batch)
        if self.calls == self.bad_iter:
            losses["loss_l1"] = losses["loss_l1"] * float("nan")
        self.calls += 1
        return losses


@pytest.mark.parametrize("async_write", [False, True])
def test_non_finite_loss_raises_naming_it(async_write):
    model = _NaNAt(bad_iter=3)
    trainer = SimpleTrainer(model, toy_batches(), torch.optim.SGD(model.parameters(), lr=0.01), async_write_metrics=async_write)
    with pytest.raises(FloatingPointError, match=r"iteration=3.*loss_l1") as info:
        trainer.train(0, 10)
    assert "loss_mse" not in str(info.value).split("\n")[0]


def test_async_metrics_are_all_written():
    trainer = _trainer(async_write_metrics=True)
    trainer.train(0, 12)
    iters = [it for _, it in trainer.storage.history("total_loss").values()]
    assert iters == list(range(12))


def test_zero_grad_before_forward():
    model, opt = make_model_and_optimizer()
    trainer = SimpleTrainer(model, toy_batches(), opt, zero_grad_before_forward=True)
    trainer.train(0, 3)
    assert math.isfinite(trainer.storage.latest()["total_loss"][0])


def test_eval_mode_is_refused():
    trainer = _trainer()
    trainer.model.eval()
    with pytest.raises(AssertionError, match="eval mode"):
        trainer.train(0, 1)


def test_state_dict_round_trip():
    trainer = _trainer()
    trainer.train(0, 4)
    state = trainer.state_dict()
    assert state["iteration"] == 4 and "optimizer" in state and "hooks" not in state

    other = _trainer()
    other.load_state_dict(state)
    assert other.iter == 4
    momentum = trainer.optimizer.state_dict()["state"][0]["momentum_buffer"]
    assert torch.equal(other.optimizer.state_dict()["state"][0]["momentum_buffer"], momentum)


def test_state_dict_carries_rng_states_that_a_weights_only_load_accepts(tmp_path):
    trainer = _trainer()
    trainer.train(0, 2)
    state = trainer.state_dict()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.save(state, tmp_path / "state.pth")
    state = torch.load(tmp_path / "state.pth", weights_only=True)

    other = _trainer()
    torch.manual_seed(123), np.random.seed(123), random.seed(123)
    other.load_state_dict(state)
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]


def test_state_from_upstream_without_rng_states_loads():
    trainer = _trainer()
    state = trainer.state_dict()
    del state["rng_state"]
    other = _trainer()
    torch.manual_seed(5)
    before = torch.rand(1)
    torch.manual_seed(5)
    other.load_state_dict(state)
    assert torch.equal(torch.rand(1), before)  # the RNGs were left alone


class _DtypeProbe(ToyModel):
    def forward(self, batch):
        x, y = batch
        self.seen = self.fc(x).dtype  # a matmul under autocast runs in low precision
        return super().forward(batch)


def test_amp_trainer_bf16_on_cpu():
    torch.manual_seed(0)
    model = _DtypeProbe()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    trainer = AMPTrainer(model, toy_batches(), opt, precision=torch.bfloat16, log_grad_scaler=True)
    trainer.train(0, 30)
    assert model.seen == torch.bfloat16
    assert model.fc.weight.dtype == torch.float32  # master weights stay fp32
    total = trainer.storage.history("total_loss").values()
    assert total[-1][0] < total[0][0] * 0.5
    assert "[metric]grad_scaler" in trainer.storage.latest()
    state = trainer.state_dict()
    assert "grad_scaler" in state



def test_amp_trainer_state_round_trip_and_bad_precision():
    model, opt = make_model_and_optimizer()
    trainer = AMPTrainer(model, toy_batches(), opt, precision=torch.bfloat16)
    trainer.train(0, 2)
    model2, opt2 = make_model_and_optimizer()
    other = AMPTrainer(model2, toy_batches(), opt2, precision=torch.bfloat16)
    other.load_state_dict(trainer.state_dict())
    assert other.iter == 2
    assert other.grad_scaler.state_dict() == trainer.grad_scaler.state_dict()
    with pytest.raises(ValueError, match="precision"):
        AMPTrainer(model, toy_batches(), opt, precision=torch.float64)


@pytest.mark.cuda
def test_amp_trainer_fp16_on_cuda():
    torch.manual_seed(0)
    model = _DtypeProbe().cuda()
    data = ((x.cuda(), y.cuda()) for x, y in toy_batches())
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    trainer = AMPTrainer(model, data, opt, precision=torch.float16, log_grad_scaler=True)
    trainer.train(0, 30)
    assert model.seen == torch.float16
    assert trainer.grad_scaler.is_enabled()
    total = trainer.storage.history("total_loss").values()
    assert total[-1][0] < total[0][0]
