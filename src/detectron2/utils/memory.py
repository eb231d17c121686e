"""Retry a function after a CUDA out-of-memory error: first with a freed cache, then on CPU."""
import logging
from contextlib import contextmanager
from functools import wraps
from typing import Callable

import torch

__all__ = ["retry_if_cuda_oom"]


def _is_cuda_oom(e: BaseException) -> bool:
    oom_type = getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(e, oom_type):
        return True
    return isinstance(e, RuntimeError) and "CUDA out of memory. " in str(e)


@contextmanager
def _ignore_torch_cuda_oom():
    """Swallow CUDA OOM errors only; anything else propagates."""
    try:
        yield
    except RuntimeError as e:
        if not _is_cuda_oom(e):
            raise


def _maybe_to_cpu(x):
    device = getattr(x, "device", None)
    if device is not None and getattr(device, "type", None) == "cuda" and hasattr(x, "to"):
        return x.to(device="cpu")
    return x


def retry_if_cuda_oom(func: Callable) -> Callable:
    """Wrap ``func`` so that a CUDA OOM is retried twice.

    1. after ``torch.cuda.empty_cache()``;
    2. with every argument that has a CUDA ``.device`` and a ``.to`` moved to the CPU.
    The second retry returns CPU results, so callers must accept outputs on either device.
    Only arguments themselves are moved (not tensors nested inside lists or dicts).
    """

    @wraps(func)
    def wrapped(*args, **kwargs):
        with _ignore_torch_cuda_oom():
            return func(*args, **kwargs)

        torch.cuda.empty_cache()
        with _ignore_torch_cuda_oom():
            return func(*args, **kwargs)

        logger = logging.getLogger(__name__)
        logger.info(f"Attempting to copy inputs of {str(func)} to CPU due to CUDA OOM")
        new_args = tuple(_maybe_to_cpu(x) for x in args)
        new_kwargs = {k: _maybe_to_cpu(v) for k, v in kwargs.items()}
        return func(*new_args, **new_kwargs)

    return wrapped
