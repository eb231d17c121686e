"""The evaluator API (DatasetEvaluator(s), inference_on_dataset, inference_context) and
the result helpers of evaluation.testing."""
import logging
import re
import time
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from detectron2.evaluation import (
    DatasetEvaluator,
    DatasetEvaluators,
    inference_context,
    inference_on_dataset,
    print_csv_format,
    verify_results,
)
from detectron2.evaluation.testing import flatten_results_dict


class Recorder(DatasetEvaluator):
    """Records the calls; evaluates to the number of inputs seen under ``key``."""

    def __init__(self, key="count", log=None):
        self.key, self.log = key, log if log is not None else []

    def reset(self):
        self.log.append("reset")
        self.seen = []

    def process(self, inputs, outputs):
        self.log.append("process")
        self.seen.extend(zip(inputs, outputs))

    def evaluate(self):
        return {self.key: {"n": len(self.seen)}}


class Doubler(nn.Module):
    """Records its training flag and whether autograd is on during forward."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1))
        self.calls = []

    def forward(self, batch):
        self.calls.append((self.training, torch.is_grad_enabled()))
        return [x * 2 * self.weight for x in batch]


def _loader(num_batches, batch_size=2):
    return [[torch.tensor(float(b * batch_size + i)) for i in range(batch_size)] for b in range(num_batches)]


def test_dataset_evaluators_merge_and_reject_duplicate_keys():
    log = []
    evaluators = DatasetEvaluators([Recorder("a", log), Recorder("b", log)])
    evaluators.reset()
    evaluators.process([1, 2], [3, 4])
    assert evaluators.evaluate() == {"a": {"n": 2}, "b": {"n": 2}}
    assert log == ["reset", "reset", "process", "process"]

    clash = DatasetEvaluators([Recorder("a"), Recorder("a")])
    clash.reset()
    with pytest.raises(KeyError, match="'a'"):
        clash.evaluate()


def test_base_evaluator_does_nothing_and_returns_none():
    evaluator = DatasetEvaluator()
    evaluator.reset()
    evaluator.process([{}], [{}])
    assert evaluator.evaluate() is None


def test_inference_on_dataset_runs_module_in_eval_mode_without_grad():
    model = Doubler()
    model.train()
    evaluator = Recorder()
    results = inference_on_dataset(model, _loader(7), evaluator)
    assert results == {"count": {"n": 14}}
    assert model.calls == [(False, False)] * 7
    assert model.training  # restored
    inputs, outputs = zip(*evaluator.seen)
    assert [float(o) for o in outputs] == [2 * float(i) for i in inputs]


def test_inference_on_dataset_accepts_callable_list_and_none():
    results = inference_on_dataset(lambda batch: [x + 1 for x in batch], _loader(3), [Recorder("a"), Recorder("b")])
    assert results == {"a": {"n": 6}, "b": {"n": 6}}
    # No evaluator: the model still runs (e.g. to time it), and the result is {}.
    calls = []
    assert inference_on_dataset(lambda batch: calls.append(batch), _loader(3), None) == {}
    assert len(calls) == 3


def test_inference_on_dataset_returns_empty_dict_when_evaluator_has_no_results():
    assert inference_on_dataset(lambda b: b, _loader(2), DatasetEvaluator()) == {}


def test_inference_on_dataset_callbacks_order():
    events = []

    def model(batch):
        events.append("model")
        return batch

    callbacks = {
        name: (lambda name=name: events.append(name))
        for name in ("on_start", "before_inference", "after_inference", "on_end")
    }
    inference_on_dataset(model, _loader(2), Recorder(), callbacks=callbacks)
    step = ["before_inference", "model", "after_inference"]
    assert events == ["on_start"] + step + step + ["on_end"]


def test_inference_on_dataset_logs_progress_and_total_time(caplog):
    with caplog.at_level(logging.INFO, logger="detectron2.evaluation.evaluator"):
        inference_on_dataset(lambda b: b, _loader(12), Recorder())
    text = caplog.text
    assert "Start inference on 12 batches" in text
    assert "Inference done 12/12" in text and "ETA=" in text  # the last iteration always logs
    assert "Total inference time" in text and "on 1 devices" in text
    assert "Total inference pure compute time" in text


def test_inference_on_dataset_single_batch():
    assert inference_on_dataset(lambda b: b, _loader(1), Recorder()) == {"count": {"n": 2}}


def test_inference_context_restores_mode_even_on_error():
    model = nn.Linear(2, 2)
    model.train()
    with pytest.raises(RuntimeError):
        with inference_context(model):
            assert not model.training
            raise RuntimeError("boom")
    assert model.training
    model.eval()
    with inference_context(model):
        pass
    assert not model.training


def test_print_csv_format_leaves_out_per_category_metrics(caplog):
    results = {"bbox": {"AP": 50.0, "AP50": 75.123456, "AP-person": 1.0}, "scalar": 3}
    with caplog.at_level(logging.INFO, logger="detectron2.evaluation.testing"):
        print_csv_format(results)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "copypaste: Task: bbox",
        "copypaste: AP,AP50",
        "copypaste: 50.0000,75.1235",
        "copypaste: scalar=3",
    ]
    with pytest.raises(TypeError, match="mapping"):
        print_csv_format([1, 2])


def _cfg(expected):
    return SimpleNamespace(TEST=SimpleNamespace(EXPECTED_RESULTS=expected))


def test_verify_results_within_tolerance_and_failures():
    results = {"bbox": {"AP": 40.0, "AP50": float("nan")}}
    assert verify_results(_cfg([]), results)
    assert verify_results(_cfg([["bbox", "AP", 40.5, 0.6]]), results)
    for expected in (
        [["bbox", "AP", 42.0, 0.5]],  # out of tolerance
        [["bbox", "AP50", 1.0, 100.0]],  # not finite
        [["bbox", "APs", 1.0, 1.0]],  # missing metric
        [["segm", "AP", 1.0, 1.0]],  # missing task
    ):
        with pytest.raises(SystemExit):
            verify_results(_cfg(expected), results)


def test_flatten_results_dict():
    nested = {"a": {"b": 1, "c": {"d": 2}}, "e": 3}
    assert flatten_results_dict(nested) == {"a/b": 1, "a/c/d": 2, "e": 3}


def test_inference_on_dataset_logs_progress_with_eta_every_5_seconds(caplog, monkeypatch):
    """A model taking 2 s a batch (on a fake clock): after the warm-up, one progress line
    about every 5 s, each with an ETA that shrinks to 0 at the end."""
    clock = [1e12]  # far after any real time.time() an earlier test logged at
    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(time, "time", lambda: clock[0])

    def model(batch):
        clock[0] += 2.0
        return batch

    with caplog.at_level(logging.INFO, logger="detectron2.evaluation.evaluator"):
        inference_on_dataset(model, _loader(30), Recorder())
    done = [int(m.group(1)) for m in re.finditer(r"Inference done (\d+)/30", caplog.text)]
    etas = re.findall(r"ETA=(\d+):(\d\d):(\d\d)", caplog.text)
    assert done[-1] == 30 and len(done) >= 5, done
    gaps = [b - a for a, b in zip(done, done[1:-1])]
    assert all(g == 3 for g in gaps), done  # 3 batches of 2 s: the first time 5 s have passed
    seconds = [int(h) * 3600 + int(m) * 60 + int(s) for h, m, s in etas]
    assert seconds == sorted(seconds, reverse=True) and seconds[-1] == 0
    assert seconds[0] == pytest.approx(2 * (30 - done[0]), abs=2)
