"""launch(): argument checks, the single-process path, and a real 2-process gloo job
training a DDP model with SimpleTrainer."""
import json
import os

import pytest
import torch
import torch.distributed as dist
from engine_helpers import ToyModel, toy_batches
from torch.nn.parallel import DistributedDataParallel

from detectron2.engine import SimpleTrainer, launch
from detectron2.engine.launch import _find_free_port
from detectron2.utils import comm


def _ddp_worker(out_dir: str, device: str) -> None:
    """Runs in every spawned process."""
    rank = comm.get_rank()
    if device == "cuda":
        torch.cuda.set_device(comm.get_local_rank())
    torch.manual_seed(rank)  # different initial weights: DDP must broadcast rank 0's
    model = ToyModel().to(device)
    ddp = DistributedDataParallel(model, device_ids=[comm.get_local_rank()] if device == "cuda" else None)
    data = ((x.to(device), y.to(device)) for x, y in toy_batches(seed=rank))  # each rank its own data
    trainer = SimpleTrainer(ddp, data, torch.optim.SGD(ddp.parameters(), lr=0.05))
    trainer.train(0, 3)

    weights = torch.cat([p.detach().flatten().cpu() for p in model.parameters()])
    reduced = comm.reduce_dict({"x": torch.tensor(float(rank + 1), device=device)})
    result = {
        "rank": rank,
        "world_size": comm.get_world_size(),
        "local_rank": comm.get_local_rank(),
        "local_size": comm.get_local_size(),
        "backend": str(dist.get_backend()),
        "all_gather": comm.all_gather(rank * 10),
        "weights": weights.tolist(),
        "reduced": float(reduced["x"]) if rank == 0 else None,
        "total_loss_logged": "total_loss" in trainer.storage.latest(),
    }
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(result, f)


def _results(out_dir, n):
    out = []
    for r in range(n):
        with open(os.path.join(out_dir, f"rank{r}.json")) as f:
            out.append(json.load(f))
    return out


def _check_job(results, backend):
    assert [r["rank"] for r in results] == [0, 1]
    for r in results:
        assert r["world_size"] == 2 and r["local_size"] == 2 and r["backend"] == backend
        assert r["all_gather"] == [0, 10]
    assert [r["local_rank"] for r in results] == [0, 1]
    # DDP keeps the replicas identical: same start (broadcast) and averaged gradients
    assert results[0]["weights"] == pytest.approx(results[1]["weights"], abs=1e-6)
    assert results[0]["reduced"] == pytest.approx(1.5)  # mean of 1 and 2
    # only the main process writes the gathered metrics
    assert [r["total_loss_logged"] for r in results] == [True, False]


def test_two_process_gloo_job(tmp_path, monkeypatch):
    # Hide GPUs so that the job takes the gloo path on any machine.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    launch(_ddp_worker, 2, dist_url="auto", args=(str(tmp_path), "cpu"))
    _check_job(_results(tmp_path, 2), "gloo")


@pytest.mark.cuda
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
def test_two_process_nccl_job(tmp_path):
    launch(_ddp_worker, 2, dist_url="auto", args=(str(tmp_path), "cuda"))
    _check_job(_results(tmp_path, 2), "nccl")


def test_single_process_runs_in_place():
    seen = []
    launch(lambda a, b: seen.append((a, b, comm.get_world_size())), 1, args=(1, 2))
    assert seen == [(1, 2, 1)]


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(num_gpus_per_machine=0), "num_gpus_per_machine"),
        (dict(num_gpus_per_machine=2.0), "num_gpus_per_machine"),
        (dict(num_gpus_per_machine=1, num_machines=0), "num_machines"),
        (dict(num_gpus_per_machine=1, num_machines=2, machine_rank=2, dist_url="tcp://h:1"), "machine_rank"),
        (dict(num_gpus_per_machine=2, dist_url=None), "dist_url is required"),
        (dict(num_gpus_per_machine=1, num_machines=2, dist_url="auto"), "dist_url=auto not supported"),
        (dict(num_gpus_per_machine=2, dist_url="127.0.0.1:1234"), "dist_url must be"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        launch(lambda: None, **kwargs)


def test_too_many_gpus_requested(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match="only 1 GPUs are visible"):
        launch(lambda: None, 2, dist_url="auto")


def test_find_free_port():
    port = _find_free_port()
    assert 0 < port < 65536
