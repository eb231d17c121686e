"""A toy model and data for the engine tests: fast, deterministic, loss dict like a
detector's."""
import itertools
from typing import Dict

import torch
from torch import nn


class ToyModel(nn.Module):
    """Linear regression with a BatchNorm in front; returns two named losses."""

    def __init__(self, dim: int = 4):
        super().__init__()
        self.bn = nn.BatchNorm1d(dim)
        self.fc = nn.Linear(dim, 1)

    def forward(self, batch) -> Dict[str, torch.Tensor]:
        x, y = batch
        pred = self.fc(self.bn(x)).squeeze(1)
        return {"loss_mse": ((pred - y) ** 2).mean(), "loss_l1": (pred - y).abs().mean() * 0.1}


def toy_batches(seed: int = 0, batch: int = 8, dim: int = 4, distinct: int = 4):
    """An endless loader cycling over ``distinct`` fixed batches."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(dim, generator=g)
    data = []
    for _ in range(distinct):
        x = torch.randn(batch, dim, generator=g)
        data.append((x, x @ w))
    return itertools.cycle(data)


def make_model_and_optimizer(lr: float = 0.05, seed: int = 0):
    torch.manual_seed(seed)
    model = ToyModel()
    return model, torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
