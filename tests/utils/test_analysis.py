import os
import sys

import pytest
import torch
from torch import nn

from detectron2.utils.analysis import (
    ActivationCountAnalysis,
    FlopCountAnalysis,
    activation_count_operators,
    find_unused_parameters,
    flop_count_operators,
    parameter_count,
    parameter_count_table,
)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "modeling"))
from rcnn_toys import toy_cfg  # noqa: E402


class Toy(nn.Module):
    """Takes detectron2-style inputs and returns a list of dicts."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, kernel_size=3, padding=1)
        self.fc = nn.Linear(4, 5)
        self.unused = nn.Linear(2, 2)

    def forward(self, batched_inputs):
        x = torch.stack([b["image"] for b in batched_inputs])
        y = torch.relu(self.conv(x)).amax(dim=(2, 3))
        return [{"scores": s, "size": b.get("height", 0)} for s, b in zip(self.fc(y), batched_inputs)]


def _inputs(n=1):
    return [{"image": torch.rand(3, 8, 10), "height": 8} for _ in range(n)]


# Multiply-accumulates by hand: conv 4 out x (8*10) positions x (3*3*3) taps; fc 4*5.
CONV_FLOPS = 4 * 8 * 10 * 27
FC_FLOPS = 4 * 5


def test_flop_count_analysis_on_list_of_dicts():
    flops = FlopCountAnalysis(Toy(), _inputs())
    assert flops.total() == CONV_FLOPS + FC_FLOPS
    assert dict(flops.by_operator()) == {"conv": CONV_FLOPS, "linear": FC_FLOPS}
    assert flops.by_module()["model.conv"] == CONV_FLOPS
    assert FlopCountAnalysis(Toy(), _inputs(2)).total() == 2 * (CONV_FLOPS + FC_FLOPS)


def test_flop_count_operators_in_gflops_and_restores_mode():
    model = Toy().train()
    ret = flop_count_operators(model, _inputs())
    assert ret["conv"] == pytest.approx(CONV_FLOPS / 1e9)
    assert ret["linear"] == pytest.approx(FC_FLOPS / 1e9)
    assert ret["nonexistent_op"] == 0.0  # a defaultdict
    assert model.training


def test_activation_counts():
    # Activations: the output elements of the conv (4*8*10) and of the linear (5).
    assert ActivationCountAnalysis(Toy(), _inputs()).total() == 4 * 8 * 10 + 5
    model = Toy().eval()
    ret = activation_count_operators(model, _inputs())
    assert ret["conv"] == pytest.approx(320 / 1e6)
    assert ret["linear"] == pytest.approx(5 / 1e6)
    assert not model.training
    with pytest.raises(ValueError, match="batch size 1"):
        activation_count_operators(model, _inputs(2))
    with pytest.raises(ValueError, match="no tensor"):
        FlopCountAnalysis(model, [{"height": 3}])


def test_find_unused_parameters():
    model = Toy().eval()
    assert find_unused_parameters(model, _inputs()) == ["unused.weight", "unused.bias"]
    assert not model.training
    assert all(p.grad is None for p in model.parameters())


def test_parameter_counts():
    model = Toy()
    assert parameter_count(model)[""] == (4 * 27 + 4) + (4 * 5 + 5) + (2 * 2 + 2)
    table = parameter_count_table(model)
    assert "conv.weight" in table and "(4, 3, 3, 3)" in table


def test_flops_of_a_proposal_network():
    from detectron2.modeling import build_model

    model = build_model(toy_cfg())
    inputs = [{"image": torch.rand(3, 64, 80) * 255}]
    ret = flop_count_operators(model, inputs)
    # Toy backbone: stem 3->8 (3x3, stride 4) gives 16x20, down 8->8 (stride 2) 8x10.
    # RPN head per level: 3x3 conv 8->8, 1x1 convs 8->3 and 8->12.
    backbone = 8 * 16 * 20 * 27 + 8 * 8 * 10 * 72
    head = sum(hw * (8 * 72 + 3 * 8 + 12 * 8) for hw in (16 * 20, 8 * 10))
    assert ret["conv"] * 1e9 == pytest.approx(backbone + head)
    assert model.training
