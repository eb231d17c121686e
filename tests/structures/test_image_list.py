from typing import List

import pytest
import torch

from detectron2.structures import ImageList


def _naive_pad(tensors, divisor=0, pad_value=0.0):
    h = max(t.shape[-2] for t in tensors)
    w = max(t.shape[-1] for t in tensors)
    if divisor > 1:
        h = (h + divisor - 1) // divisor * divisor
        w = (w + divisor - 1) // divisor * divisor
    out = torch.full((len(tensors),) + tuple(tensors[0].shape[:-2]) + (h, w), pad_value)
    for i, t in enumerate(tensors):
        out[i, ..., : t.shape[-2], : t.shape[-1]] = t
    return out


def _images():
    g = torch.Generator().manual_seed(0)
    return [torch.rand(3, 15, 20, generator=g), torch.rand(3, 31, 7, generator=g), torch.rand(3, 8, 33, generator=g)]


@pytest.mark.parametrize("divisor", [0, 1, 32])
def test_from_tensors_matches_naive_padding(divisor):
    images = _images()
    il = ImageList.from_tensors(images, size_divisibility=divisor, pad_value=-1.0)
    torch.testing.assert_close(il.tensor, _naive_pad(images, divisor, -1.0))
    assert il.image_sizes == [(15, 20), (31, 7), (8, 33)]
    assert len(il) == 3
    for i, img in enumerate(images):
        torch.testing.assert_close(il[i], img)
    assert il.tensor.is_contiguous()


def test_single_image_and_2d_images():
    img = torch.rand(3, 10, 13)
    il = ImageList.from_tensors([img], size_divisibility=8)
    assert il.tensor.shape == (1, 3, 16, 16)
    torch.testing.assert_close(il[0], img)
    assert il.tensor[0, :, 10:].abs().sum() == 0
    masks = ImageList.from_tensors([torch.ones(4, 5), torch.ones(6, 2)], pad_value=7.0)
    assert masks.tensor.shape == (2, 6, 5)
    assert masks.tensor[1, 0, 4] == 7.0


def test_padding_constraints():
    images = _images()
    il = ImageList.from_tensors(images, padding_constraints={"square_size": 64})
    assert il.tensor.shape == (3, 3, 64, 64)
    il = ImageList.from_tensors(images, size_divisibility=32, padding_constraints={"size_divisibility": 5})
    assert il.tensor.shape == (3, 3, 35, 35)
    il = ImageList.from_tensors(images, size_divisibility=4, padding_constraints={"square_size": 0})
    assert il.tensor.shape == (3, 3, 32, 36)


def test_non_contiguous_images():
    base = torch.rand(3, 20, 30)
    img = base.transpose(1, 2)
    assert not img.is_contiguous()
    il = ImageList.from_tensors([img, torch.rand(3, 5, 5)])
    torch.testing.assert_close(il[0], img)


def test_bad_input():
    with pytest.raises(ValueError, match="empty"):
        ImageList.from_tensors([])
    with pytest.raises(TypeError):
        ImageList.from_tensors(torch.rand(2, 3, 4, 4))
    with pytest.raises(ValueError, match="leading dims"):
        ImageList.from_tensors([torch.rand(3, 4, 4), torch.rand(1, 4, 4)])
    with pytest.raises(ValueError, match="at least 2 dims"):
        ImageList.from_tensors([torch.rand(4)])
    with pytest.raises(TypeError):
        ImageList.from_tensors([torch.rand(3, 4, 4), None])


def test_device_and_to(device):
    images = [t.to(device) for t in _images()]
    il = ImageList.from_tensors(images, size_divisibility=32)
    assert il.device.type == device.type and il.tensor.device.type == device.type
    torch.testing.assert_close(il.tensor.cpu(), _naive_pad(_images(), 32))
    half = il.to(dtype=torch.float16)
    assert half.tensor.dtype == torch.float16 and half.image_sizes == il.image_sizes
    moved = il.to("cpu")
    assert moved.device.type == "cpu"


def _script_pad(images: List[torch.Tensor]):
    il = ImageList.from_tensors(images, 32, 0.0)
    return il.tensor, il[1], il.image_sizes


def test_torchscript():
    scripted = torch.jit.script(_script_pad)
    tensor, second, sizes = scripted(_images())
    ref = _script_pad(_images())
    torch.testing.assert_close(tensor, ref[0])
    torch.testing.assert_close(second, ref[1])
    assert [tuple(s) for s in sizes] == ref[2]


def _traceable(a: torch.Tensor, b: torch.Tensor):
    return ImageList.from_tensors([a, b], size_divisibility=4).tensor


def test_trace_follows_input_sizes():
    a, b = torch.rand(3, 5, 9), torch.rand(3, 7, 6)
    traced = torch.jit.trace(_traceable, (a, b), check_trace=False)
    # New sizes: the traced graph must pad to the new maximum, not the example's.
    c, d = torch.rand(3, 11, 3), torch.rand(3, 2, 13)
    torch.testing.assert_close(traced(c, d), _traceable(c, d))
