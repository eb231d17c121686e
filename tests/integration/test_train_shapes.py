"""End to end on CPU: train Mask R-CNN on the generated shapes dataset with
scripts/train_shapes.py, evaluate with COCOEvaluator, and check that a run killed
mid-training and resumed from its last checkpoint ends exactly where an uninterrupted
run ends.

Thresholds: the small model (R18-FPN-64 from scratch, 300 iterations of 4 images of
128 px) reached bbox/mask AP 32.2/31.6 on the H100 host's CPU (4 threads) and bbox AP
22.2 on the 2-core CI machine: runs on different CPUs follow different float roundings
and, this early in training, land some AP apart. The test asks for 15, two thirds of
the lowest run seen; a model that has not learnt (random weights) scores ~0 and one that
learnt boxes but not masks fails the mask threshold. benchmarks/results has the runs.
"""
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "train_shapes.py"
BOX_AP_MIN = 15.0
MASK_AP_MIN = 15.0

pytestmark = pytest.mark.slow


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    env.setdefault("OMP_NUM_THREADS", str(max(1, min(4, os.cpu_count() or 1))))
    return env


def _train(output: Path, data: Path, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(SCRIPT), "--output", str(output), "--data", str(data), *extra]
    return subprocess.run(cmd, env=_env(), capture_output=True, text=True, check=check, timeout=1800)


def _metrics(output: Path) -> dict:
    """The final evaluation (results.json; metrics.json is the trainer's event log)."""
    return json.loads((output / "results.json").read_text())


def _events(output: Path) -> list:
    return [json.loads(line) for line in (output / "metrics.json").read_text().splitlines()]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("shapes_data")


def test_mask_rcnn_learns_shapes(tmp_path, data_dir):
    _train(tmp_path, data_dir)
    metrics = _metrics(tmp_path)
    assert metrics["bbox"]["AP"] > BOX_AP_MIN, metrics["bbox"]
    assert metrics["segm"]["AP"] > MASK_AP_MIN, metrics["segm"]
    assert (tmp_path / "model_final.pth").is_file()


def test_short_small_run_is_stable_learns_and_evaluates_once(tmp_path):
    """40 iterations of 4 images from 80 (this diverged to NaN at iteration 32 before the
    gradient clipping): every logged loss finite, the RPN's objectness loss falls from
    chance (ln 2 = 0.69), and the one evaluation scores the model's detections.

    Whether 40 iterations already place a box at IoU 0.5 depends on the CPU's float
    rounding: bbox AP50 was above 0 on the previous CI machines and 0.0 (182 detections,
    scores <= 0.10) on an AMD EPYC with the same code and packages. That the model learns
    shapes is test_mask_rcnn_learns_shapes' claim (300 iterations, AP > 15)."""
    out = _train(tmp_path / "out", tmp_path / "data", "--iters", "40", "--train-images", "80", "--val-images", "20")
    log = out.stdout + out.stderr
    assert log.count("Start inference on") == 1, "evaluated more than once"
    events = [e for e in _events(tmp_path / "out") if "total_loss" in e]
    assert [e["iteration"] for e in events] == [19, 39]
    for e in events:
        assert all(math.isfinite(v) for k, v in e.items() if k.startswith("loss") or k == "total_loss"), e
    first, last = events[0]["loss_rpn_cls"], events[-1]["loss_rpn_cls"]
    assert last < 0.3 and last < 0.5 * first, (first, last)
    results = _metrics(tmp_path / "out")
    for task in ("bbox", "segm"):
        # (APl is NaN: the shapes have no large objects, and COCO reports -1 there.)
        assert all(0 <= results[task][k] <= 100 for k in ("AP", "AP50", "AP75")), results
    detections = json.loads((tmp_path / "out" / "inference" / "coco_instances_results.json").read_text())
    assert len(detections) > 0 and {d["category_id"] for d in detections} <= {1, 2, 3}
    assert (tmp_path / "out" / "config.yaml").is_file() and (tmp_path / "out" / "model_final.pth").is_file()


def _wait_for_checkpoint(proc: subprocess.Popen, output: Path, name: str, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (output / name).is_file() and (output / "last_checkpoint").read_text().strip() == name:
            return
        if proc.poll() is not None:
            raise AssertionError(f"training ended (rc={proc.returncode}) before writing {name}")
        time.sleep(0.2)
    raise AssertionError(f"no {name} after {timeout} s")


def test_killed_and_resumed_run_ends_like_an_uninterrupted_one(tmp_path, data_dir):
    common = ["--iters", "40", "--checkpoint-period", "10", "--val-images", "20"]
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    _train(straight, data_dir, *common)

    cmd = [sys.executable, str(SCRIPT), "--output", str(interrupted), "--data", str(data_dir), *common]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_checkpoint(proc, interrupted, "model_0000019.pth", timeout=900)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (interrupted / "model_final.pth").exists(), "the run finished before it was killed"
    # Whatever the kill interrupted, the last checkpoint named in last_checkpoint loads.
    last = (interrupted / "last_checkpoint").read_text().strip()
    torch.load(interrupted / last, map_location="cpu", weights_only=True)

    resumed = _train(interrupted, data_dir, *common, "--resume")
    assert f"Loading from {interrupted / last}" in resumed.stdout + resumed.stderr
    assert _metrics(interrupted) == _metrics(straight)
    final_a = torch.load(straight / "model_final.pth", map_location="cpu", weights_only=True)["model"]
    final_b = torch.load(interrupted / "model_final.pth", map_location="cpu", weights_only=True)["model"]
    assert final_a.keys() == final_b.keys()
    for key in final_a:
        torch.testing.assert_close(final_b[key], final_a[key], rtol=0, atol=0, msg=key)
