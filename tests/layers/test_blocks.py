import pytest
import torch
from torch import nn

from detectron2.layers import ASPP, CNNBlockBase, Conv2d, DepthwiseSeparableConv2d, FrozenBatchNorm2d


class _Block(CNNBlockBase):
    def __init__(self):
        super().__init__(3, 8, 2)
        self.conv = Conv2d(3, 8, 3, stride=2, padding=1, norm=nn.BatchNorm2d(8))

    def forward(self, x):
        return self.conv(x)


def test_cnn_block_freeze():
    block = _Block()
    assert (block.in_channels, block.out_channels, block.stride) == (3, 8, 2)
    assert block.freeze() is block
    assert all(not p.requires_grad for p in block.parameters())
    assert isinstance(block.conv.norm, FrozenBatchNorm2d)
    assert block(torch.randn(1, 3, 8, 8)).shape == (1, 8, 4, 4)


def test_depthwise_separable_conv():
    m = DepthwiseSeparableConv2d(4, 6, kernel_size=3, padding=2, dilation=2, norm1="BN", activation1=nn.ReLU(), norm2="")
    assert m.depthwise.groups == 4 and m.depthwise.bias is None and isinstance(m.depthwise.norm, nn.BatchNorm2d)
    assert m.pointwise.bias is not None and m.pointwise.norm is None
    assert m.pointwise.bias.abs().max() == 0
    x = torch.randn(2, 4, 9, 9)
    assert m(x).shape == (2, 6, 9, 9)
    assert (m.depthwise(x) >= 0).all()


@pytest.mark.parametrize("separable", [False, True])
def test_aspp_shape_and_keys(separable):
    aspp = ASPP(16, 8, [2, 4, 6], norm="BN", activation=nn.ReLU(), use_depthwise_separable_conv=separable)
    assert len(aspp.convs) == 5
    out = aspp.eval()(torch.randn(2, 16, 13, 17))
    assert out.shape == (2, 8, 13, 17)
    keys = set(aspp.state_dict())
    assert "convs.4.1.weight" in keys and "convs.4.1.bias" in keys and "project.norm.running_mean" in keys
    if separable:
        assert "convs.1.depthwise.weight" in keys and "convs.1.pointwise.norm.weight" in keys
    else:
        assert "convs.1.weight" in keys and aspp.convs[1].dilation == (2, 2)
    # each branch owns its activation
    assert aspp.convs[0].activation is not aspp.project.activation


def test_aspp_pool_kernel_size_and_dropout():
    aspp = ASPP(4, 4, [1, 2, 3], norm="", activation=nn.ReLU(), pool_kernel_size=(4, 4), dropout=0.5)
    assert aspp.convs[0].bias is not None
    assert isinstance(aspp.convs[4][0], nn.AvgPool2d)
    assert aspp.train()(torch.randn(1, 4, 8, 12)).shape == (1, 4, 8, 12)
    x = torch.randn(1, 4, 8, 8)
    aspp.eval()
    torch.testing.assert_close(aspp(x), aspp(x))
    with pytest.raises(ValueError, match="pool_kernel_size"):
        aspp(torch.randn(1, 4, 8, 10))
    with pytest.raises(AssertionError):
        ASPP(4, 4, [1, 2], norm="", activation=nn.ReLU())
