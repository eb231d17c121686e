import math

import pytest
import torch

from detectron2.modeling import Box2BoxTransform, Box2BoxTransformLinear, Box2BoxTransformRotated
from detectron2.modeling.box_regression import _DEFAULT_SCALE_CLAMP, _dense_box_regression_loss
from detectron2.structures import Boxes


def _random_boxes(n, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g, dtype=dtype) * 100
    wh = torch.rand(n, 2, generator=g, dtype=dtype) * 50 + 1
    return torch.cat([xy, xy + wh], dim=1)


def test_scale_clamp_default():
    assert _DEFAULT_SCALE_CLAMP == pytest.approx(math.log(1000.0 / 16))
    assert Box2BoxTransform((1, 1, 1, 1)).scale_clamp == _DEFAULT_SCALE_CLAMP


def test_get_deltas_hand_computed():
    src = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    tgt = torch.tensor([[5.0, 5.0, 25.0, 15.0]])  # centre (15, 10), 20 x 10
    d = Box2BoxTransform((1.0, 1.0, 1.0, 1.0)).get_deltas(src, tgt)
    torch.testing.assert_close(d, torch.tensor([[1.0, 0.5, math.log(2.0), 0.0]]))
    d = Box2BoxTransform((10.0, 10.0, 5.0, 5.0)).get_deltas(src, tgt)
    torch.testing.assert_close(d, torch.tensor([[10.0, 5.0, 5 * math.log(2.0), 0.0]]))


@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)])
def test_round_trip(weights, device):
    t = Box2BoxTransform(weights)
    src = _random_boxes(50, 0).to(device)
    tgt = _random_boxes(50, 1).to(device)
    deltas = t.get_deltas(src, tgt)
    torch.testing.assert_close(t.apply_deltas(deltas, src), tgt)
    # Per-class deltas: k sets of 4 decode independently.
    multi = torch.cat([deltas, torch.zeros_like(deltas)], dim=1)
    out = t.apply_deltas(multi, src)
    torch.testing.assert_close(out[:, :4], tgt)
    torch.testing.assert_close(out[:, 4:], src)


def test_apply_deltas_clamps_scale_and_float32():
    t = Box2BoxTransform((1.0, 1.0, 1.0, 1.0))
    boxes = torch.tensor([[0.0, 0.0, 16.0, 16.0]])
    out = t.apply_deltas(torch.tensor([[0.0, 0.0, 100.0, 100.0]], dtype=torch.float16), boxes)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.tensor([[-492.0, -492.0, 508.0, 508.0]]))  # 1000 px wide
    with pytest.raises(ValueError, match="deltas"):
        t.apply_deltas(torch.zeros(2, 5), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="src_boxes"):
        t.get_deltas(torch.zeros(2, 5), torch.zeros(2, 4))
    with pytest.raises(TypeError, match="target_boxes"):
        t.get_deltas(torch.zeros(2, 4), [[0, 0, 1, 1]])
    with pytest.raises(ValueError, match="weights"):
        Box2BoxTransform((1.0, 1.0, 1.0))


def test_rotated_round_trip_and_angle_wrap(device):
    t = Box2BoxTransformRotated((10.0, 10.0, 5.0, 5.0, 1.0))
    g = torch.Generator().manual_seed(3)
    src = torch.cat([torch.rand(40, 2, generator=g) * 100, torch.rand(40, 2, generator=g) * 40 + 1,
                     torch.rand(40, 1, generator=g) * 360 - 180], dim=1).double().to(device)
    tgt = torch.cat([torch.rand(40, 2, generator=g) * 100, torch.rand(40, 2, generator=g) * 40 + 1,
                     torch.rand(40, 1, generator=g) * 360 - 180], dim=1).double().to(device)
    deltas = t.get_deltas(src, tgt)
    assert (deltas[:, 4].abs() <= math.pi + 1e-9).all()  # wrapped difference
    torch.testing.assert_close(t.apply_deltas(deltas, src), tgt)

    src = torch.tensor([[0.0, 0.0, 10.0, 10.0, 170.0]])
    tgt = torch.tensor([[0.0, 0.0, 10.0, 10.0, -170.0]])
    d = t.get_deltas(src, tgt)
    assert d[0, 4].item() == pytest.approx(math.radians(20.0))
    assert t.apply_deltas(d, src)[0, 4].item() == pytest.approx(-170.0, abs=1e-4)
    with pytest.raises(ValueError, match="boxes"):
        t.apply_deltas(torch.zeros(1, 5), torch.zeros(1, 4))


def test_linear_transform():
    t = Box2BoxTransformLinear(normalize_by_size=True)
    anchors = torch.tensor([[0.0, 0.0, 8.0, 8.0], [8.0, 0.0, 16.0, 8.0]])
    tgt = torch.tensor([[1.0, 2.0, 10.0, 7.0], [4.0, 1.0, 20.0, 5.0]])
    d = t.get_deltas(anchors, tgt)
    torch.testing.assert_close(d[0], torch.tensor([3.0, 2.0, 6.0, 3.0]) / 8)
    torch.testing.assert_close(t.apply_deltas(d, anchors), tgt)
    plain = Box2BoxTransformLinear(normalize_by_size=False)
    torch.testing.assert_close(plain.apply_deltas(plain.get_deltas(anchors, tgt), anchors), tgt)
    # Negative distances are invalid: decoded as 0.
    out = plain.apply_deltas(torch.tensor([[-1.0, -1.0, 2.0, 2.0], [0.0, 0.0, 0.0, 0.0]]), anchors)
    torch.testing.assert_close(out[0], torch.tensor([4.0, 4.0, 6.0, 6.0]))


@pytest.mark.parametrize("loss_type", ["smooth_l1", "giou", "diou", "ciou"])
def test_dense_box_regression_loss(loss_type):
    t = Box2BoxTransform((1.0, 1.0, 1.0, 1.0))
    anchors = [Boxes(_random_boxes(6, 0, torch.float32)), Boxes(_random_boxes(4, 1, torch.float32))]
    gt = [_random_boxes(10, 2, torch.float32), _random_boxes(10, 3, torch.float32)]
    all_anchors = torch.cat([a.tensor for a in anchors])
    exact = [torch.stack([t.get_deltas(all_anchors, g) for g in gt])[:, :6], None]
    exact[1] = torch.stack([t.get_deltas(all_anchors, g) for g in gt])[:, 6:]
    fg = torch.zeros(2, 10, dtype=torch.bool)
    fg[0, 1] = fg[1, 7] = True
    loss = _dense_box_regression_loss(anchors, t, exact, gt, fg, loss_type)
    assert loss.item() == pytest.approx(0.0, abs=1e-4)  # perfect predictions
    off = [exact[0] + 0.1, exact[1] + 0.1]
    loss = _dense_box_regression_loss(anchors, t, off, gt, fg, loss_type)
    assert loss.item() > 0.01
    if loss_type == "smooth_l1":
        assert loss.item() == pytest.approx(0.1 * 8, rel=1e-4)  # L1 over 2 anchors x 4
        beta = _dense_box_regression_loss(anchors, t, off, gt, fg, loss_type, smooth_l1_beta=1.0)
        assert beta.item() == pytest.approx(8 * 0.5 * 0.01, rel=1e-3)
    tensors = _dense_box_regression_loss([a.tensor for a in anchors], t, off, gt, fg, loss_type)
    torch.testing.assert_close(tensors, loss)


def test_dense_box_regression_loss_bad_type():
    anchors = [Boxes(_random_boxes(2, 0, torch.float32))]
    with pytest.raises(ValueError, match="loss type"):
        _dense_box_regression_loss(
            anchors, Box2BoxTransform((1, 1, 1, 1)), [torch.zeros(1, 2, 4)], [anchors[0].tensor],
            torch.ones(1, 2, dtype=torch.bool), "l2",
        )
