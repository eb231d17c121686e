"""retry_if_cuda_oom: retries after emptying the cache, then on CPU (simulated OOMs)."""
import pytest
import torch

from detectron2.utils.memory import retry_if_cuda_oom


class _FakeCudaTensor:
    """Looks like a CUDA tensor to retry_if_cuda_oom, without needing a GPU."""

    device = torch.device("cuda")

    def __init__(self):
        self.moved_to = None

    def to(self, device):
        self.moved_to = device
        return "cpu-copy"


def _oom():
    return torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_success_needs_no_retry():
    calls = []

    @retry_if_cuda_oom
    def f(x):
        calls.append(x)
        return x * 2

    assert f(3) == 6 and calls == [3]


def test_retry_after_empty_cache(monkeypatch):
    emptied = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(1))
    attempts = []

    def f(x):
        attempts.append(x)
        if len(attempts) == 1:
            raise _oom()
        return "ok"

    assert retry_if_cuda_oom(f)(1) == "ok"
    assert len(attempts) == 2 and emptied == [1]


def test_fallback_to_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    seen = []

    def f(x, y=None, plain=0):
        seen.append((x, y, plain))
        if len(seen) <= 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 1 GiB")  # older torch message
        return x, y, plain

    a, b = _FakeCudaTensor(), _FakeCudaTensor()
    assert retry_if_cuda_oom(f)(a, y=b, plain=5) == ("cpu-copy", "cpu-copy", 5)
    assert a.moved_to == "cpu" and b.moved_to == "cpu"
    assert len(seen) == 3


def test_other_errors_propagate():
    def f():
        raise RuntimeError("something else")

    with pytest.raises(RuntimeError, match="something else"):
        retry_if_cuda_oom(f)()


def test_oom_on_cpu_retry_propagates(monkeypatch):
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)

    def f(x):
        raise _oom()

    with pytest.raises(torch.cuda.OutOfMemoryError):
        retry_if_cuda_oom(f)(torch.zeros(1))


@pytest.mark.cuda
def test_real_cuda_tensors_move_to_cpu():
    calls = []

    def f(t):
        calls.append(t.device.type)
        if t.is_cuda:
            raise _oom()
        return t + 1

    out = retry_if_cuda_oom(f)(torch.zeros(2, device="cuda"))
    assert calls == ["cuda", "cuda", "cpu"] and out.device.type == "cpu"
