"""Helpers for test suites (ours and downstream ones) that need no model."""
from typing import Any

import torch
from packaging import version

__all__ = ["random_boxes", "assert_instances_allclose", "min_torch_version"]


def min_torch_version(min_version: str) -> bool:
    """Whether the running torch is at least ``min_version`` (local tags like +cu130 ignored)."""
    installed = version.parse(torch.__version__.split("+")[0])
    return installed >= version.parse(min_version)


def random_boxes(num_boxes: int, max_coord: int = 100, device="cpu") -> torch.Tensor:
    """``num_boxes`` random valid XYXY boxes (x0 < x1, y0 < y1) with coordinates in
    [1, max_coord], as a float32 (num_boxes, 4) tensor on ``device``."""
    # Top-left corners and sizes each span at most half of the range, so x1 <= max_coord.
    boxes = torch.rand(num_boxes, 4, device=device) * (max_coord * 0.5)
    boxes.clamp_(min=1.0)  # sizes >= 1: no degenerate boxes
    boxes[:, 2:] += boxes[:, :2]
    return boxes


def _as_tensor(value: Any):
    """The tensor behind a structure (Boxes, RotatedBoxes, ROIMasks, BitMasks...) or
    the tensor itself; None when the value is neither."""
    if isinstance(value, torch.Tensor):
        return value
    inner = getattr(value, "tensor", None)
    return inner if isinstance(inner, torch.Tensor) else None


def assert_instances_allclose(input, other, *, rtol: float = 1e-5, msg: str = "", size_as_tensor: bool = False) -> None:
    """Assert that two Instances have the same image size, the same fields and close values.

    Args:
        rtol: relative tolerance. Box-like fields (structures holding a ``.tensor``,
            whose coordinates are O(100)) use an absolute tolerance of ``100 * rtol``;
            float tensors use ``rtol`` times their largest magnitude; other tensors
            must be equal.
        msg: prefix of the assertion message.
        size_as_tensor: compare image sizes as tensors (they are tensors in traced or
            scripted models).
    """
    msg = msg.rstrip() + " " if msg else "Two Instances are different! "
    size_msg = msg + f"image_size is {input.image_size} vs. {other.image_size}!"
    if size_as_tensor:
        same_size = torch.equal(torch.as_tensor(input.image_size), torch.as_tensor(other.image_size))
    else:
        same_size = input.image_size == other.image_size
    assert same_size, size_msg

    fields = sorted(input.get_fields().keys())
    fields_other = sorted(other.get_fields().keys())
    assert fields == fields_other, msg + f"Fields are {fields} vs {fields_other}!"

    for f in fields:
        val1, val2 = input.get(f), other.get(f)
        if isinstance(val1, torch.Tensor):
            if not isinstance(val2, torch.Tensor):
                raise AssertionError(msg + f"Field {f} is a Tensor vs. {type(val2)}!")
            assert val1.shape == val2.shape, msg + f"Field {f} has shape {tuple(val1.shape)} vs {tuple(val2.shape)}!"
            if val1.dtype.is_floating_point:
                mag = torch.abs(val1).max().item() if val1.numel() else 0.0
                ok = torch.allclose(val1, val2, rtol=0.0, atol=mag * rtol)
                assert ok, msg + f"Field {f} differs too much!"
            else:
                assert torch.equal(val1, val2), msg + f"Field {f} is different!"
            continue
        t1, t2 = _as_tensor(val1), _as_tensor(val2)
        if t1 is None:
            raise ValueError(f"Don't know how to compare field {f} of type {type(val1)}")
        if type(val1) is not type(val2) or t2 is None:
            raise AssertionError(msg + f"Field {f} is a {type(val1)} vs. {type(val2)}!")
        assert t1.shape == t2.shape, msg + f"Field {f} has shape {tuple(t1.shape)} vs {tuple(t2.shape)}!"
        assert torch.allclose(t1.float(), t2.float(), rtol=0.0, atol=100 * rtol), msg + f"Field {f} differs too much!"
