import math

import pytest
import torch

from detectron2.layers import ciou_loss, diou_loss


def _reference(p, g, complete: bool, eps: float = 1e-7) -> float:
    """Scalar DIoU/CIoU loss for two XYXY boxes, written from the paper's equations."""
    iw = max(0.0, min(p[2], g[2]) - max(p[0], g[0]))
    ih = max(0.0, min(p[3], g[3]) - max(p[1], g[1]))
    inter = iw * ih
    area_p = (p[2] - p[0]) * (p[3] - p[1])
    area_g = (g[2] - g[0]) * (g[3] - g[1])
    iou = inter / (area_p + area_g - inter + eps)
    cx = ((p[0] + p[2]) - (g[0] + g[2])) / 2
    cy = ((p[1] + p[3]) - (g[1] + g[3])) / 2
    c2 = (max(p[2], g[2]) - min(p[0], g[0])) ** 2 + (max(p[3], g[3]) - min(p[1], g[1])) ** 2 + eps
    loss = 1 - iou + (cx * cx + cy * cy) / c2
    if complete:
        v = 4 / math.pi**2 * (math.atan((g[2] - g[0]) / (g[3] - g[1])) - math.atan((p[2] - p[0]) / (p[3] - p[1]))) ** 2
        loss += v / (1 - iou + v + eps) * v
    return loss


def _pairs(n: int, seed: int, device):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, 2, generator=g, dtype=torch.float64) * 20
    wh = torch.rand(n, 2, 2, generator=g, dtype=torch.float64) * 15 + 0.5
    boxes = torch.cat([xy, xy + wh], dim=-1).to(device)  # (n, 2, 4)
    return boxes[:, 0], boxes[:, 1]


@pytest.mark.parametrize("fn,complete", [(diou_loss, False), (ciou_loss, True)])
def test_matches_scalar_reference(device, fn, complete):
    p, g = _pairs(50, 0, device)
    got = fn(p, g)
    expected = torch.tensor(
        [_reference(a.tolist(), b.tolist(), complete) for a, b in zip(p.cpu(), g.cpu())],
        dtype=torch.float64,
    )
    torch.testing.assert_close(got.cpu(), expected, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(fn(p, g, reduction="sum"), got.sum())
    torch.testing.assert_close(fn(p, g, reduction="mean"), got.mean())


@pytest.mark.parametrize("fn", [diou_loss, ciou_loss])
def test_identical_and_disjoint_boxes(device, fn):
    boxes = torch.tensor([[0.0, 0.0, 4.0, 2.0], [10.0, 10.0, 12.0, 15.0]], device=device)
    assert fn(boxes, boxes).abs().max() < 1e-6
    far = fn(boxes[:1], boxes[1:])
    assert far.item() > 1.0  # no overlap, and a centre-distance penalty on top


@pytest.mark.parametrize("fn", [diou_loss, ciou_loss])
def test_batch_dimensions_and_empty(device, fn):
    p, g = _pairs(6, 1, device)
    assert fn(p.view(2, 3, 4), g.view(2, 3, 4)).shape == (2, 3)
    empty = torch.zeros(0, 4, device=device, requires_grad=True)
    loss = fn(empty, empty.detach(), reduction="mean")
    assert loss.item() == 0.0
    loss.backward()  # still connected to the graph


def test_ciou_alpha_is_a_constant_for_gradients(device):
    p, g = _pairs(8, 2, device)
    p.requires_grad_(True)
    ciou_loss(p, g, reduction="sum").backward()
    # Same loss with alpha folded in as a detached factor, from the DIoU part.
    q = p.detach().clone().requires_grad_(True)
    w, h = q[:, 2] - q[:, 0], q[:, 3] - q[:, 1]
    v = 4 / math.pi**2 * (torch.atan((g[:, 2] - g[:, 0]) / (g[:, 3] - g[:, 1])) - torch.atan(w / h)) ** 2
    loss_c = ciou_loss(q.detach(), g)
    alpha = ((loss_c - diou_loss(q.detach(), g)) / v).detach()
    (diou_loss(q, g) + alpha * v).sum().backward()
    torch.testing.assert_close(p.grad, q.grad)


def test_bad_inputs(device):
    good = torch.tensor([[0.0, 0.0, 1.0, 1.0]], device=device)
    with pytest.raises(ValueError, match="boxes1"):
        diou_loss(torch.tensor([[2.0, 0.0, 1.0, 1.0]], device=device), good)
    with pytest.raises(ValueError, match="boxes1"):
        ciou_loss(torch.tensor([[0.0, 2.0, 1.0, 1.0]], device=device), good)
    with pytest.raises(ValueError, match="boxes2"):
        diou_loss(good, torch.zeros(1, 5, device=device))
    with pytest.raises(ValueError, match="reduction"):
        ciou_loss(good, good, reduction="avg")
