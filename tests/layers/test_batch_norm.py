import os
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from detectron2.layers import CycleBatchNormList, FrozenBatchNorm2d, NaiveSyncBatchNorm, get_norm
from detectron2.layers.batch_norm import LayerNorm

BN_KEYS = {"weight", "bias", "running_mean", "running_var"}


def trained_bn(channels=4):
    bn = nn.BatchNorm2d(channels)
    bn.train()
    for _ in range(3):
        bn(torch.randn(8, channels, 5, 5) * 3 + 1)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
    return bn.eval()


def test_frozen_bn_keys_and_round_trip():
    frozen = FrozenBatchNorm2d(4)
    assert set(frozen.state_dict().keys()) == BN_KEYS
    assert dict(frozen.named_parameters()) == {}
    bn = trained_bn()
    frozen.load_state_dict({k: v for k, v in bn.state_dict().items() if k in BN_KEYS})
    x = torch.randn(2, 4, 6, 6)
    torch.testing.assert_close(frozen(x), bn(x))
    again = FrozenBatchNorm2d(4)
    again.load_state_dict(frozen.state_dict())
    for k in BN_KEYS:
        torch.testing.assert_close(getattr(again, k), getattr(frozen, k))


def test_frozen_bn_grad_path_equals_inference_path():
    frozen = FrozenBatchNorm2d.convert_frozen_batchnorm(trained_bn())
    x = torch.randn(2, 4, 6, 6)
    y_eval = frozen(x)
    x.requires_grad_(True)
    y_grad = frozen(x)
    torch.testing.assert_close(y_grad, y_eval)
    y_grad.sum().backward()
    assert x.grad is not None and frozen.weight.grad is None


def _uncached(frozen, x):
    scale, bias = frozen._fold(x.dtype)
    return x * scale + bias


class _OpCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops += 1
        return func(*args, **(kwargs or {}))


def test_frozen_bn_reuses_its_folded_statistics():
    frozen = FrozenBatchNorm2d.convert_frozen_batchnorm(trained_bn())
    x = torch.randn(2, 4, 6, 6, requires_grad=True)
    first = frozen(x)
    counter = _OpCounter()
    with counter:
        second = frozen(x)
    assert counter.ops == 2  # x * scale + bias
    assert torch.equal(first, second) and torch.equal(second, _uncached(frozen, x))
    second.sum().backward()
    ref = x.detach().clone().requires_grad_(True)
    _uncached(frozen, ref).sum().backward()
    assert torch.equal(x.grad, ref.grad)
    # Under autocast-like dtypes the cache keeps one entry, for the dtype in use.
    x64 = torch.randn(2, 4, 6, 6, dtype=torch.float64, requires_grad=True)
    assert frozen(x64).dtype == torch.float64 and torch.equal(frozen(x64), _uncached(frozen, x64))


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m.running_var.mul_(2.0),  # in place
        lambda m: m.weight.add_(1.0),
        lambda m: m.load_state_dict({k: v * 3 for k, v in m.state_dict().items()}),
        lambda m: setattr(m.bias, "data", torch.full((4,), 5.0)),  # new data, same tensor
        lambda m: setattr(m, "running_mean", torch.full((4,), 0.5)),  # new tensor
        lambda m: setattr(m, "eps", 0.1),
        lambda m: m.double(),
    ],
    ids=["running_var_", "weight_", "load_state_dict", "bias.data", "new_buffer", "eps", "double"],
)
def test_frozen_bn_recomputes_after_any_change(change):
    frozen = FrozenBatchNorm2d.convert_frozen_batchnorm(trained_bn())
    x = torch.randn(2, 4, 6, 6, requires_grad=True)
    before = frozen(x)
    change(frozen)
    x = x.to(frozen.weight.dtype).detach().requires_grad_(True)
    after = frozen(x)
    assert torch.equal(after, _uncached(frozen, x))
    assert not torch.equal(after.to(before.dtype), before)


def test_frozen_bn_recomputes_for_another_view_of_the_same_memory():
    # Same data pointer and version counter, another tensor: other values.
    frozen = FrozenBatchNorm2d(4)
    memory = torch.arange(1.0, 9.0)
    frozen.running_var = memory[:4]
    x = torch.randn(2, 4, 3, 3, requires_grad=True)
    before = frozen(x)
    frozen.running_var = memory.as_strided((4,), (2,))
    assert torch.equal(frozen(x), _uncached(frozen, x)) and not torch.equal(frozen(x), before)


def test_frozen_bn_buffers_that_require_grad_get_gradients():
    frozen = FrozenBatchNorm2d.convert_frozen_batchnorm(trained_bn())
    x = torch.randn(2, 4, 3, 3, requires_grad=True)
    frozen(x)  # a cache entry from before
    frozen.weight.requires_grad_(True)
    frozen(x).sum().backward()
    assert frozen.weight.grad is not None and frozen.weight.grad.abs().sum() > 0


def test_frozen_bn_built_in_inference_mode_still_trains():
    with torch.inference_mode():
        frozen = FrozenBatchNorm2d(4)
    x = torch.randn(2, 4, 3, 3, requires_grad=True)
    frozen(x).sum().backward()
    assert torch.equal(x.grad, frozen._fold(x.dtype)[0].expand_as(x))


def test_frozen_bn_version_upgrades():
    frozen = FrozenBatchNorm2d(3, eps=1e-3)
    # version 1: no running statistics in the checkpoint
    v1 = {"weight": torch.full((3,), 2.0), "bias": torch.ones(3)}
    v1_meta = v1.copy()
    v1_meta = type(frozen.state_dict())(v1_meta)
    v1_meta._metadata = {"": {"version": 1}}
    frozen.load_state_dict(v1_meta)
    torch.testing.assert_close(frozen.running_mean, torch.zeros(3))
    torch.testing.assert_close(frozen.running_var, torch.ones(3) - 1e-3)
    # version 2: running_var was used without eps
    v2 = type(frozen.state_dict())(
        {"weight": torch.ones(3), "bias": torch.zeros(3), "running_mean": torch.zeros(3), "running_var": torch.ones(3)}
    )
    v2._metadata = {"": {"version": 2}}
    frozen.load_state_dict(v2)
    torch.testing.assert_close(frozen.running_var, torch.ones(3) - 1e-3)
    # current version: loaded as is
    sd = frozen.state_dict()
    assert sd._metadata[""]["version"] == 3
    sd["running_var"] = torch.full((3,), 4.0)
    frozen.load_state_dict(sd)
    torch.testing.assert_close(frozen.running_var, torch.full((3,), 4.0))


def test_convert_frozen_batchnorm_nested_and_back():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), trained_bn(), nn.Sequential(nn.ReLU(), trained_bn()))
    x = torch.randn(2, 3, 5, 5)
    expected = model(x)
    converted = FrozenBatchNorm2d.convert_frozen_batchnorm(model)
    assert converted is model
    assert isinstance(model[1], FrozenBatchNorm2d) and isinstance(model[2][1], FrozenBatchNorm2d)
    torch.testing.assert_close(model(x), expected)
    assert repr(model[1]) == "FrozenBatchNorm2d(num_features=4, eps=1e-05)"
    back = FrozenBatchNorm2d.convert_frozenbatchnorm2d_to_batchnorm2d(model).eval()
    assert type(back[1]) is nn.BatchNorm2d
    torch.testing.assert_close(back(x), expected)


@pytest.mark.parametrize(
    "name,cls",
    [
        ("BN", nn.BatchNorm2d),
        ("SyncBN", nn.SyncBatchNorm),
        ("FrozenBN", FrozenBatchNorm2d),
        ("GN", nn.GroupNorm),
        ("nnSyncBN", nn.SyncBatchNorm),
        ("naiveSyncBN", NaiveSyncBatchNorm),
        ("naiveSyncBN_N", NaiveSyncBatchNorm),
        ("LN", LayerNorm),
    ],
)
def test_get_norm_names(name, cls):
    norm = get_norm(name, 64)
    assert type(norm) is cls
    if name == "GN":
        assert norm.num_groups == 32 and norm.num_channels == 64
    elif name == "LN":
        assert norm.normalized_shape == (64,)
    else:
        assert norm.num_features == 64
    if name == "naiveSyncBN_N":
        assert norm._stats_mode == "N"


def test_get_norm_empty_callable_and_unknown():
    assert get_norm(None, 8) is None
    assert get_norm("", 8) is None
    norm = get_norm(lambda c: nn.GroupNorm(2, c), 8)
    assert isinstance(norm, nn.GroupNorm) and norm.num_groups == 2
    with pytest.raises(KeyError, match="unknown norm 'XN'"):
        get_norm("XN", 8)


def test_layer_norm_is_channels_first():
    ln = LayerNorm(5)
    with torch.no_grad():
        ln.weight.uniform_()
        ln.bias.uniform_()
    x = torch.randn(2, 5, 3, 4)
    ref = nn.functional.layer_norm(x.permute(0, 2, 3, 1), (5,), ln.weight, ln.bias, 1e-6).permute(0, 3, 1, 2)
    torch.testing.assert_close(ln(x), ref)


def test_cycle_batchnorm_list():
    cycle = CycleBatchNormList(3, num_features=4)
    assert len(cycle) == 3 and all(not bn.affine for bn in cycle)
    assert cycle.weight.shape == (4,) and cycle.bias.shape == (4,)
    with torch.no_grad():
        cycle.weight.fill_(2.0)
        cycle.bias.fill_(1.0)
    inputs = [torch.randn(4, 4, 3, 3) * (i + 1) + i for i in range(3)]
    for x in inputs:
        torch.testing.assert_close(cycle(x), nn.functional.batch_norm(x, None, None, training=True) * 2 + 1)
    for i, bn in enumerate(cycle):  # each input went to its own BatchNorm
        torch.testing.assert_close(bn.running_mean, 0.1 * inputs[i].mean(dim=(0, 2, 3)))
    assert cycle._pos == 0
    plain = CycleBatchNormList(2, affine=False, num_features=4)
    assert not hasattr(plain, "weight") and "affine=False" in repr(plain)


def test_naive_sync_bn_single_process_equals_batchnorm():
    torch.manual_seed(0)
    ref, naive = nn.BatchNorm2d(4), NaiveSyncBatchNorm(4)
    naive.load_state_dict(ref.state_dict())
    for mode in ("train", "eval"):
        getattr(ref, mode)()
        getattr(naive, mode)()
        x = torch.randn(6, 4, 5, 5)
        torch.testing.assert_close(naive(x), ref(x))
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(naive.state_dict()[k], v)


AFFINE = (torch.tensor([1.0, 2.0, 0.5, 1.5]), torch.tensor([0.0, 1.0, -1.0, 0.5]))


def _sync_bn_worker(rank, world_size, init_file, x, out_file):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        for stats_mode in ("", "N"):
            bn = NaiveSyncBatchNorm(4, stats_mode=stats_mode).train()
            with torch.no_grad():
                bn.weight.copy_(AFFINE[0])
                bn.bias.copy_(AFFINE[1])
            local = x.chunk(world_size)[rank].clone().requires_grad_(True)
            y = bn(local)
            (y * torch.arange(y.numel()).reshape(y.shape)).sum().backward()
            result = {"y": y.detach(), "grad": local.grad, "mean": bn.running_mean, "var": bn.running_var}
            torch.save(result, f"{out_file}.{stats_mode}.{rank}")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def sync_bn_runs():
    """Both stats modes in one pair of processes (spawning is the slow part)."""
    x = torch.randn(8, 4, 3, 3) * 2 + 0.5
    with tempfile.TemporaryDirectory() as tmp:
        init_file, out_file = os.path.join(tmp, "init"), os.path.join(tmp, "out")
        mp.spawn(_sync_bn_worker, args=(2, init_file, x, out_file), nprocs=2)
        runs = {m: [torch.load(f"{out_file}.{m}.{r}") for r in range(2)] for m in ("", "N")}
    return x, runs


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not built in")
@pytest.mark.parametrize("stats_mode", ["", "N"])
def test_naive_sync_bn_two_processes_equals_full_batch(sync_bn_runs, stats_mode):
    x, runs = sync_bn_runs
    results = runs[stats_mode]
    ref = nn.BatchNorm2d(4).train()
    with torch.no_grad():
        ref.weight.copy_(AFFINE[0])
        ref.bias.copy_(AFFINE[1])
    xr = x.clone().requires_grad_(True)
    y = ref(xr)
    (y * torch.cat([torch.arange(y.numel() // 2).reshape(4, 4, 3, 3)] * 2)).sum().backward()
    torch.testing.assert_close(torch.cat([r["y"] for r in results]), y.detach(), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(torch.cat([r["grad"] for r in results]), xr.grad, rtol=1e-4, atol=1e-4)
    biased_var = x.var(dim=(0, 2, 3), unbiased=False)
    for r in results:
        torch.testing.assert_close(r["mean"], ref.running_mean)
        torch.testing.assert_close(r["var"], 0.9 + 0.1 * biased_var)
