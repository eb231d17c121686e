import os
import sys

import numpy as np
import pytest
import torch
from torchvision.ops import nms as tv_nms

from detectron2.layers import batched_nms_rotated, nms_rotated
from detectron2.layers._ops import ops

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rotated_reference as ref  # noqa: E402


def _t(array, dtype=torch.float32, device="cpu") -> torch.Tensor:
    return torch.as_tensor(np.asarray(array, dtype=np.float64), dtype=dtype, device=device)


def _xyxy(b: torch.Tensor) -> torch.Tensor:
    return torch.cat([b[:, :2] - b[:, 2:4] / 2, b[:, :2] + b[:, 2:4] / 2], dim=1)


def _boxes_scores(n: int, seed: int, spread: float = 60.0):
    boxes = ref.random_boxes(n, seed=seed, spread=spread)
    scores = np.random.RandomState(seed + 100).permutation(n) / n  # distinct scores
    return boxes, scores


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("threshold", [0.1, 0.3, 0.7])
def test_matches_numpy_reference(device, dtype, threshold):
    boxes, scores = _boxes_scores(80, seed=int(threshold * 10))
    ious = ref.pairwise_iou(boxes, boxes)
    assert np.abs(ious - threshold).min() > 1e-4  # no decision within rounding of the threshold
    keep = nms_rotated(_t(boxes, dtype, device), _t(scores, dtype, device), threshold)
    assert keep.dtype == torch.int64 and keep.device.type == device.type
    assert keep.tolist() == ref.nms(boxes, scores, threshold)


def test_axis_aligned_matches_torchvision(device):
    boxes, scores = _boxes_scores(300, seed=1, spread=200)
    boxes[:, 4] = 0
    b, s = _t(boxes, device=device), _t(scores, device=device)
    for threshold in (0.2, 0.5):
        assert nms_rotated(b, s, threshold).tolist() == tv_nms(_xyxy(b), s, threshold).tolist()


def test_ties_keep_input_order(device):
    same = _t([[10, 10, 4, 6, 30]] * 5, device=device)
    assert nms_rotated(same, torch.ones(5, device=device), 0.5).tolist() == [0]
    apart = _t([[i * 100.0, 0, 4, 6, 30] for i in range(70)], device=device)  # spans two 64-box blocks
    assert nms_rotated(apart, torch.ones(70, device=device), 0.5).tolist() == list(range(70))


def test_threshold_extremes(device):
    boxes, scores = _boxes_scores(40, seed=2)
    b, s = _t(boxes, device=device), _t(scores, device=device)
    # IoU > 1 never holds, IoU > -1 always does.
    assert sorted(nms_rotated(b, s, 1.0).tolist()) == list(range(40))
    assert nms_rotated(b, s, -1.0).tolist() == [int(np.argmax(scores))]


def test_degenerate_boxes_do_not_suppress(device):
    boxes = _t([[5, 5, 0, 4, 0], [5, 5, 4, 4, 0], [5, 5, 4, 0, 10], [5, 5, 4, 4, 0]], device=device)
    scores = _t([0.9, 0.8, 0.7, 0.6], device=device)
    assert nms_rotated(boxes, scores, 0.5).tolist() == [0, 1, 2]


def test_empty_input(device):
    keep = nms_rotated(torch.zeros(0, 5, device=device), torch.zeros(0, device=device), 0.5)
    assert keep.shape == (0,) and keep.dtype == torch.int64 and keep.device.type == device.type


def test_non_contiguous_inputs(device):
    boxes, scores = _boxes_scores(50, seed=3)
    b, s = _t(boxes, device=device), _t(scores, device=device)
    wide = torch.zeros(50, 10, device=device)
    wide[:, 1::2] = b
    strided_scores = torch.stack([s, s], dim=1)[:, 1]
    assert not wide[:, 1::2].is_contiguous() and not strided_scores.is_contiguous()
    assert nms_rotated(wide[:, 1::2], strided_scores, 0.3).tolist() == nms_rotated(b, s, 0.3).tolist()


def test_bad_inputs(device):
    boxes, scores = torch.zeros(4, 5, device=device), torch.zeros(4, device=device)
    cases = [
        ((torch.zeros(4, 4, device=device), scores), ValueError, "boxes"),
        ((torch.zeros(4, device=device), scores), ValueError, "boxes"),
        ((boxes, torch.zeros(4, 1, device=device)), ValueError, "scores"),
        ((boxes, torch.zeros(3, device=device)), ValueError, "scores"),
        ((boxes.int(), scores.int()), TypeError, "boxes"),
        ((boxes, scores.double()), TypeError, "scores"),
    ]
    if device.type == "cpu":
        cases.append(((boxes.half(), scores.half()), TypeError, "boxes"))
    for (b, s), exc, name in cases:
        with pytest.raises(exc, match=name):
            ops().nms_rotated(b, s, 0.5)


@pytest.mark.cuda
def test_mismatched_devices():
    with pytest.raises(ValueError, match="scores"):
        ops().nms_rotated(torch.zeros(4, 5, device="cuda"), torch.zeros(4), 0.5)
    with pytest.raises(ValueError, match="scores"):
        ops().nms_rotated(torch.zeros(4, 5), torch.zeros(4, device="cuda"), 0.5)


@pytest.mark.cuda
@pytest.mark.parametrize("n", [1, 63, 64, 65, 2000])
def test_cuda_matches_cpu(n):
    # Dense boxes (many suppressions) and sizes around the 64-box block edges. float64:
    # with thousands of overlapping pairs, float32 rounding differences between the
    # devices (FMA contraction) could flip an IoU lying within 1e-6 of the threshold.
    boxes, scores = _boxes_scores(n, seed=n, spread=max(30.0, n**0.5 * 8))
    b, s = _t(boxes, torch.float64), _t(scores, torch.float64)
    for threshold in (0.3, 0.6):
        assert nms_rotated(b.cuda(), s.cuda(), threshold).cpu().tolist() == nms_rotated(b, s, threshold).tolist()


@pytest.mark.cuda
def test_cuda_float32_matches_cpu():
    boxes, scores = _boxes_scores(1500, seed=4, spread=300)
    b, s = _t(boxes), _t(scores)
    assert nms_rotated(b.cuda(), s.cuda(), 0.5).cpu().tolist() == nms_rotated(b, s, 0.5).tolist()


@pytest.mark.cuda
def test_cuda_handles_10k_boxes_with_equal_scores():
    n = 12000  # 188 mask words per row: the reduction's fold spans many threads
    boxes, _ = _boxes_scores(n, seed=5, spread=900)
    b, s = _t(boxes, torch.float64), torch.ones(n, dtype=torch.float64)
    keep = nms_rotated(b.cuda(), s.cuda(), 0.5).cpu()
    assert keep.tolist() == nms_rotated(b, s, 0.5).tolist()
    assert 0 < len(keep) < n  # real suppressions happened


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_half_types(dtype):
    boxes, scores = _boxes_scores(200, seed=6, spread=40)
    b, s = _t(boxes, dtype, "cuda"), _t(scores, dtype, "cuda")
    keep = nms_rotated(b, s, 0.5)
    assert keep.dtype == torch.int64
    # Kept boxes do not overlap above the threshold (up to half-precision rounding).
    ious = ops().box_iou_rotated(b[keep].float(), b[keep].float())
    ious.fill_diagonal_(0)
    assert ious.max() <= 0.5 + 1e-2


def _batched_reference(boxes, scores, idxs, threshold):
    keep = []
    for c in torch.unique(idxs):
        members = torch.nonzero(idxs == c).flatten()
        keep.append(members[nms_rotated(boxes[members], scores[members], threshold)])
    keep = torch.cat(keep)
    return keep[torch.sort(scores[keep], descending=True, stable=True)[1]]


@pytest.mark.parametrize("spread", [60.0, 1e7])
def test_batched_matches_per_class_loop(device, spread):
    boxes, scores = _boxes_scores(120, seed=7, spread=50)
    boxes[:, :2] -= 25  # negative coordinates
    boxes[:, :2] *= spread / 60  # the large spread takes the exact per-class path
    boxes[:, 2:4] *= spread / 60
    b, s = _t(boxes, device=device), _t(scores, device=device)
    idxs = torch.as_tensor(np.random.RandomState(8).randint(0, 5, 120) * 100003, device=device)
    original = b.clone()
    keep = batched_nms_rotated(b, s, idxs, 0.3)
    assert keep.tolist() == _batched_reference(b, s, idxs, 0.3).tolist()
    assert torch.equal(b, original)
    # Classes really are independent: the same boxes under one class suppress more.
    assert len(batched_nms_rotated(b, s, torch.zeros_like(idxs), 0.3)) < len(keep)


def test_batched_empty_and_half(device):
    keep = batched_nms_rotated(torch.zeros(0, 5, device=device), torch.zeros(0, device=device),
                               torch.zeros(0, dtype=torch.int64, device=device), 0.5)
    assert keep.shape == (0,) and keep.dtype == torch.int64
    boxes, scores = _boxes_scores(30, seed=9)
    idxs = torch.arange(30, device=device) % 3
    half = batched_nms_rotated(_t(boxes, torch.float16, device), _t(scores, torch.float16, device), idxs, 0.5)
    full = batched_nms_rotated(_t(boxes, torch.float16, device).float(),
                               _t(scores, torch.float16, device).float(), idxs, 0.5)
    assert half.tolist() == full.tolist()


@pytest.mark.parametrize("spread", [60.0, 1e7])
def test_torchscript_matches_eager(device, spread):
    # Upstream scripts these; the lazy _C loader (a `global`) must stay out of the way.
    scripted = torch.jit.script(nms_rotated)
    scripted_batched = torch.jit.script(batched_nms_rotated)
    boxes, scores = _boxes_scores(90, seed=10, spread=50)
    boxes[:, :4] *= spread / 60  # the large spread takes the per-class loop
    b, s = _t(boxes, device=device), _t(scores, device=device)
    idxs = torch.as_tensor(np.random.RandomState(11).randint(0, 4, 90), device=device)
    assert scripted(b, s, 0.3).tolist() == nms_rotated(b, s, 0.3).tolist()
    assert scripted_batched(b, s, idxs, 0.3).tolist() == batched_nms_rotated(b, s, idxs, 0.3).tolist()
    assert len(scripted_batched(b, s, idxs, 0.3)) > len(scripted(b, s, 0.3))
