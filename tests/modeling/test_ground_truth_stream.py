"""The RPN labels anchors on a side CUDA stream beside the backbone (ground_truth_stream):
the results and random draws equal the plain call's, the side work's host syncs do not
wait for the backbone, and the current stream waits for the side work before using it."""
import os
import sys

import pytest
import torch

from detectron2.modeling import build_model, ground_truth_stream
from detectron2.modeling.ground_truth_stream import beside_backbone, ground_truth_ready
from detectron2.utils.events import EventStorage

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_rcnn import _mask_rcnn_cfg, _with_box_masks  # noqa: E402
from rcnn_toys import toy_inputs  # noqa: E402

# About 0.1-1 s of device time on any GPU: far longer than the host needs for the side work.
LONG_SLEEP_CYCLES = 500_000_000


def test_plain_call_without_a_mark_or_on_cpu():
    calls = []
    assert beside_backbone(lambda: calls.append(1) or "out", torch.device("cpu")) == "out"
    with ground_truth_ready(torch.device("cpu")):
        assert beside_backbone(lambda: calls.append(2) or "in", torch.device("cpu")) == "in"
    assert calls == [1, 2]


@pytest.mark.cuda
def test_side_work_does_not_wait_for_the_backbone():
    gt = torch.arange(10.0, device="cuda")
    with ground_truth_ready(gt.device):  # warm-up: the side stream's first allocations
        beside_backbone(lambda: gt.sum().item(), gt.device)
    torch.cuda.synchronize()
    with ground_truth_ready(gt.device):
        torch.cuda._sleep(LONG_SLEEP_CYCLES)  # the "backbone", queued after the mark
        total = beside_backbone(lambda: gt.sum().item(), gt.device)  # a host sync
        # The sync returned while the current stream was still busy: it waited for the
        # side stream alone.
        assert not torch.cuda.current_stream().query()
    torch.cuda.synchronize()
    assert total == 45.0


@pytest.mark.cuda
def test_current_stream_waits_for_the_side_results():
    gt = torch.ones(1 << 20, device="cuda")
    with ground_truth_ready(gt.device):

        def slow_double():
            torch.cuda._sleep(LONG_SLEEP_CYCLES // 4)  # on the side stream, before the write
            return gt * 2

        doubled = beside_backbone(slow_double, gt.device)
        total = doubled.sum()  # on the current stream: must see the finished write
    assert total.item() == 2.0 * (1 << 20)


@pytest.mark.cuda
@pytest.mark.parametrize("meta", ["GeneralizedRCNN", "ProposalNetwork"])
def test_training_step_equals_plain_stream(meta, monkeypatch):
    """Losses bitwise equal with and without the side stream, from the same seed: the
    same ops and the same random draws (anchor sampling). Gradients are equal up to the
    order of the atomic adds of RoIAlign's backward, which varies from run to run."""
    cfg = _mask_rcnn_cfg()
    cfg.MODEL.META_ARCHITECTURE = meta
    cfg.MODEL.DEVICE = "cuda"
    torch.manual_seed(0)
    model = build_model(cfg)
    inputs = _with_box_masks(toy_inputs())

    def step(enabled):
        monkeypatch.setattr(ground_truth_stream, "ENABLED", enabled)
        model.zero_grad(set_to_none=True)
        torch.manual_seed(1)
        with EventStorage():
            losses = model(inputs)
        sum(losses.values()).backward()
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        return {k: v.detach().clone() for k, v in losses.items()}, grads

    plain_losses, plain_grads = step(False)
    side_losses, side_grads = step(True)
    assert plain_losses.keys() == side_losses.keys()
    for name in plain_losses:
        assert torch.equal(plain_losses[name], side_losses[name]), name
    assert len(plain_grads) == len(side_grads) > 0
    for a, b in zip(plain_grads, side_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
