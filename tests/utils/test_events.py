"""EventStorage histories/smoothing, JSONWriter, TensorboardXWriter, CommonMetricPrinter."""
import json
import logging
import os

import pytest
import torch

from detectron2.utils.events import (
    CommonMetricPrinter,
    EventStorage,
    EventWriter,
    JSONWriter,
    TensorboardXWriter,
    get_event_storage,
    has_event_storage,
)


def test_context_stack():
    assert not has_event_storage()
    with pytest.raises(AssertionError, match="EventStorage"):
        get_event_storage()
    with EventStorage(start_iter=5) as outer:
        assert get_event_storage() is outer and outer.iter == 5
        with EventStorage() as inner:
            assert get_event_storage() is inner
        assert get_event_storage() is outer
    assert not has_event_storage()


def test_history_latest_and_steps():
    with EventStorage() as s:
        for i in range(5):
            s.put_scalar("loss", float(i))
            s.put_scalars(acc=i * 10, lr=torch.tensor(0.1), smoothing_hint=False)
            s.step()
        assert s.iter == s.iteration == 5
        hist = s.history("loss")
        assert [v for v, _ in hist.values()] == [0.0, 1.0, 2.0, 3.0, 4.0]
        assert [it for _, it in hist.values()] == [0, 1, 2, 3, 4]
        assert s.latest()["loss"] == (4.0, 4)
        assert s.latest()["lr"] == (pytest.approx(0.1), 4)
        assert set(s.histories()) == {"loss", "acc", "lr"}
        assert s.smoothing_hints() == {"loss": True, "acc": False, "lr": False}
        with pytest.raises(KeyError, match="nothing"):
            s.history("nothing")
        s.iter = 10
        s.put_scalar("loss", 9.0, cur_iter=42)
        assert s.latest()["loss"] == (9.0, 42)


def test_smoothing_hint_median_over_window():
    with EventStorage() as s:
        for i, v in enumerate([10.0, 1.0, 2.0, 3.0, 100.0]):
            s.iter = i
            s.put_scalar("smooth", v)
            s.put_scalar("raw", v, smoothing_hint=False)
        latest = s.latest_with_smoothing_hint(window_size=3)
        # Window of 3 iterations (2, 3, 4): median of [2, 3, 100].
        assert latest["smooth"] == (3.0, 4)
        assert latest["raw"] == (100.0, 4)
        assert s.latest_with_smoothing_hint(window_size=20)["smooth"] == (3.0, 4)  # median of all 5
        assert s.count_samples("smooth", 2) == 2
        with pytest.raises(AssertionError, match="smoothing_hint"):
            s.put_scalar("smooth", 1.0, smoothing_hint=False)


def test_count_samples_counts_multiple_puts_per_iteration():
    with EventStorage() as s:
        for it in (0, 1, 1, 2, 2, 2):
            s.put_scalar("x", 1.0, cur_iter=it)
        assert s.count_samples("x", window_size=1) == 3
        assert s.count_samples("x", window_size=2) == 5


def test_name_scope():
    with EventStorage() as s:
        with s.name_scope("val"):
            s.put_scalar("ap", 0.5)
            with s.name_scope("inner/"):
                s.put_scalar("ap", 0.6)
            s.put_scalar("ar", 0.4)
        s.put_scalar("ap", 0.1)
        assert set(s.latest()) == {"val/ap", "inner/ap", "val/ar", "ap"}


def test_images_and_histograms():
    with EventStorage(start_iter=3) as s:
        s.put_image("img", torch.zeros(3, 4, 4))
        s.put_histogram("w", torch.arange(10, dtype=torch.float32), bins=5)
        assert s._vis_data[0][0] == "img" and s._vis_data[0][2] == 3
        h = s._histograms[0]
        assert h["tag"] == "w" and h["min"] == 0 and h["max"] == 9 and h["num"] == 10
        assert h["sum"] == 45 and h["sum_squares"] == 285
        assert h["bucket_counts"] == [2.0, 2.0, 2.0, 2.0, 2.0]
        assert h["bucket_limits"] == pytest.approx([1.8, 3.6, 5.4, 7.2, 9.0])
        assert h["global_step"] == 3
        s.clear_images()
        s.clear_histograms()
        assert s._vis_data == [] and s._histograms == []


def test_json_writer(tmp_path):
    path = str(tmp_path / "metrics.json")
    writer = JSONWriter(path, window_size=2)
    with EventStorage() as s:
        for i in range(4):
            s.put_scalar("loss", float(i))
            s.put_scalar("lr", 0.1 * (i + 1), smoothing_hint=False)
            if i % 2 == 1:
                writer.write()
            s.step()
        writer.write()  # nothing new: no line added
        s.put_scalar("late", 1.0, cur_iter=2)  # an iteration already written: skipped
        writer.write()
    writer.close()
    with open(path) as f:
        lines = [json.loads(x) for x in f]
    assert [x["iteration"] for x in lines] == [1, 3]
    assert lines[0] == {"iteration": 1, "loss": 0.5, "lr": pytest.approx(0.2)}
    assert lines[1]["loss"] == 2.5  # median of iterations 2 and 3 (window 2)
    assert all("late" not in x for x in lines)

    # Appends to an existing file.
    writer = JSONWriter(path)
    with EventStorage(start_iter=10) as s:
        s.put_scalar("loss", 1.0)
        writer.write()
    writer.close()
    with open(path) as f:
        assert len(f.readlines()) == 3


def test_event_writer_is_abstract():
    with pytest.raises(TypeError):
        EventWriter()

    class Collect(EventWriter):
        def write(self):
            self.seen = dict(get_event_storage().latest())

    w = Collect()
    with EventStorage() as s:
        s.put_scalar("a", 1)
        w.write()
    w.close()
    assert w.seen == {"a": (1.0, 0)}


def test_tensorboard_writer(tmp_path):
    writer = TensorboardXWriter(str(tmp_path / "tb"), window_size=1)
    with EventStorage() as s:
        s.put_scalar("loss", 1.0)
        s.put_image("img", torch.rand(3, 8, 8))
        s.put_histogram("w", torch.randn(100))
        writer.write()
        assert s._vis_data == [] and s._histograms == []  # consumed once written
        s.step()
        s.put_scalar("loss", 2.0)
        writer.write()
    writer.close()
    files = os.listdir(tmp_path / "tb")
    assert any(f.startswith("events.out.tfevents") for f in files)

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("loss")] == [(0, 1.0), (1, 2.0)]
    assert acc.Tags()["images"] == ["img"]


def test_tensorboard_writer_close_without_writes(tmp_path):
    TensorboardXWriter(str(tmp_path / "never")).close()
    assert not (tmp_path / "never").exists()  # the SummaryWriter is created lazily


def test_common_metric_printer(caplog):
    printer = CommonMetricPrinter(max_iter=100, window_size=20)
    with caplog.at_level(logging.INFO, logger="detectron2.utils.events"):
        with EventStorage(start_iter=10) as s:
            s.put_scalars(total_loss=1.5, loss_cls=0.5, time=0.2, data_time=0.01)
            s.put_scalar("lr", 0.02, smoothing_hint=False)
            s.put_scalar("[metric]acc", 0.9)
            s.put_scalar("other", 3.0)
            printer.write()
            eta = s.latest()["eta_seconds"][0]
    line = caplog.records[-1].getMessage()
    assert eta == pytest.approx(0.2 * 89)
    assert "eta: 0:00:17" in line
    assert "iter: 10" in line
    assert "total_loss: 1.5" in line and "loss_cls: 0.5" in line
    assert "[metric]acc: 0.9" in line and "other" not in line
    assert "time: 0.2000" in line and "data_time: 0.0100" in line
    assert "lr: 0.02" in line


def test_common_metric_printer_without_timing(caplog):
    printer = CommonMetricPrinter(max_iter=10)
    with caplog.at_level(logging.INFO, logger="detectron2.utils.events"):
        with EventStorage() as s:
            printer.write()  # first call: no estimate yet
            s.iter = 5
            printer.write()
            s.iter = 10
            printer.write()  # the final iteration prints nothing
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "lr: N/A" in messages[0] and "eta" not in messages[0]
    assert "eta:" in messages[1]


def test_smoothed_values_equal_history_buffer_median():
    import random

    rng = random.Random(0)
    with EventStorage() as s:
        for it in range(300):
            s.put_scalar("loss", rng.random())
            s.put_scalar("sparse", rng.random(), cur_iter=it // 3)  # several puts per iteration
            s.step()
        for window in (1, 2, 3, 19, 20, 1000):
            smoothed = s.latest_with_smoothing_hint(window)
            for name in ("loss", "sparse"):
                expected = s.history(name).median(s.count_samples(name, window))
                assert smoothed[name][0] == expected, (name, window)


def test_put_scalar_accepts_device_tensors(device):
    with EventStorage() as s:
        s.put_scalar("loss", torch.tensor(0.25, device=device))
        s.put_scalars(a=torch.ones((), device=device), b=torch.tensor([2.0], device=device))
        s.put_histogram("h", torch.arange(4.0, device=device), bins=2)
    assert s.latest()["loss"] == (0.25, 0)
    assert s.latest()["a"][0] == 1.0 and s.latest()["b"][0] == 2.0
    assert s._histograms[0]["bucket_counts"] == [2.0, 2.0]
