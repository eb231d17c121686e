import pytest
import torch
from torch import nn

from detectron2.layers import (
    BatchNorm2d,
    Conv2d,
    ConvTranspose2d,
    Linear,
    ShapeSpec,
    cat,
    cross_entropy,
    empty_input_loss_func_wrapper,
    interpolate,
    move_device_like,
    nonzero_tuple,
    shapes_to_tensor,
)
from detectron2.layers.wrappers import check_if_dynamo_compiling


def test_conv2d_norm_and_activation():
    torch.manual_seed(0)
    conv = Conv2d(3, 8, 3, padding=1, bias=False, norm=nn.BatchNorm2d(8), activation=torch.relu).eval()
    x = torch.randn(2, 3, 10, 10)
    expected = torch.relu(conv.norm(nn.functional.conv2d(x, conv.weight, None, 1, 1)))
    torch.testing.assert_close(conv(x), expected)
    assert set(conv.state_dict()) == {
        "weight",
        "norm.weight",
        "norm.bias",
        "norm.running_mean",
        "norm.running_var",
        "norm.num_batches_tracked",
    }
    plain = Conv2d(3, 4, 1)
    assert plain.norm is None and plain.activation is None
    torch.testing.assert_close(plain(x), nn.functional.conv2d(x, plain.weight, plain.bias))


def test_conv2d_empty_input():
    conv = Conv2d(3, 8, 3, stride=2, padding=1, norm=nn.BatchNorm2d(8)).eval()
    out = conv(torch.zeros(0, 3, 10, 10))
    assert out.shape == (0, 8, 5, 5)
    sync = Conv2d(3, 8, 1, norm=nn.SyncBatchNorm(8)).train()
    with pytest.raises(AssertionError, match="SyncBatchNorm does not support empty inputs"):
        sync(torch.zeros(0, 3, 4, 4))


def test_conv2d_scripts():
    conv = torch.jit.script(Conv2d(2, 2, 1, norm=nn.BatchNorm2d(2), activation=nn.ReLU()).eval())
    assert conv(torch.randn(1, 2, 3, 3)).shape == (1, 2, 3, 3)


def test_reexports():
    assert BatchNorm2d is nn.BatchNorm2d and ConvTranspose2d is nn.ConvTranspose2d and Linear is nn.Linear
    assert interpolate is nn.functional.interpolate


def test_cat():
    a = torch.randn(2, 3)
    assert cat([a]) is a
    torch.testing.assert_close(cat([a, a], dim=1), torch.cat([a, a], 1))
    with pytest.raises(AssertionError):
        cat(a)


def test_cross_entropy_empty_and_normal():
    logits = torch.zeros(0, 5, requires_grad=True)
    loss = cross_entropy(logits, torch.zeros(0, dtype=torch.long))
    assert loss.item() == 0.0
    loss.backward()
    assert logits.grad.shape == (0, 5)
    x, t = torch.randn(4, 5), torch.tensor([0, 1, 2, 3])
    torch.testing.assert_close(cross_entropy(x, t), nn.functional.cross_entropy(x, t))
    torch.testing.assert_close(
        cross_entropy(x, t, reduction="sum", ignore_index=1),
        nn.functional.cross_entropy(x, t, reduction="sum", ignore_index=1),
    )
    summed = cross_entropy(torch.zeros(0, 5), torch.zeros(0, dtype=torch.long), reduction="sum")
    assert summed.item() == 0.0


def test_empty_input_loss_func_wrapper():
    wrapped = empty_input_loss_func_wrapper(nn.functional.mse_loss)
    x = torch.zeros(0, 3, requires_grad=True)
    assert wrapped(x, torch.zeros(0, 3)).item() == 0.0
    assert torch.isnan(nn.functional.mse_loss(torch.zeros(0, 3), torch.zeros(0, 3)))
    a, b = torch.randn(3), torch.randn(3)
    torch.testing.assert_close(wrapped(a, b), nn.functional.mse_loss(a, b))


def test_nonzero_tuple():
    x = torch.tensor([[0, 1], [1, 0]])
    rows, cols = nonzero_tuple(x)
    assert rows.tolist() == [0, 1] and cols.tolist() == [1, 0]

    @torch.jit.script
    def scripted(t: torch.Tensor):
        return nonzero_tuple(t)

    assert [r.tolist() for r in scripted(x)] == [[0, 1], [1, 0]]
    assert [r.tolist() for r in scripted(torch.tensor(3))] == [[0]]


def test_shapes_to_tensor_and_move_device_like():
    t = shapes_to_tensor([3, 4])
    assert t.tolist() == [3, 4] and t.dtype == torch.long
    moved = move_device_like(torch.ones(2), torch.zeros(1, device="cpu"))
    assert moved.device.type == "cpu"

    def traced_fn(x):
        return shapes_to_tensor([x.shape[0], x.shape[1]]) * 2

    traced = torch.jit.trace(traced_fn, (torch.zeros(2, 3),))
    assert traced(torch.zeros(5, 7)).tolist() == [10, 14]


def test_move_device_like_cuda(device):
    dst = torch.zeros(1, device=device)
    assert move_device_like(torch.ones(2), dst).device == dst.device


def test_check_if_dynamo_compiling():
    assert check_if_dynamo_compiling() is False


def test_shape_spec():
    s = ShapeSpec(channels=256, stride=4)
    assert (s.channels, s.height, s.width, s.stride) == (256, None, None, 4)
    assert ShapeSpec() == ShapeSpec(None, None, None, None)
    assert ShapeSpec(1, 2, 3, 4).width == 3
