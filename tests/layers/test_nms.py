import pytest
import torch
from torchvision.ops import boxes as box_ops

from detectron2.layers import batched_nms, nms


def _boxes(n: int, seed: int, device) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 100
    wh = torch.rand(n, 2, generator=g) * 40 + 1
    return torch.cat([xy, xy + wh], dim=1).to(device)


def test_nms_is_torchvision(device):
    boxes = _boxes(200, 0, device)
    scores = torch.rand(200, generator=torch.Generator().manual_seed(1)).to(device)
    assert nms(boxes, scores, 0.5).tolist() == box_ops.nms(boxes, scores, 0.5).tolist()


def test_batched_nms_per_category(device):
    boxes = _boxes(300, 2, device)
    scores = torch.rand(300, generator=torch.Generator().manual_seed(3)).to(device)
    idxs = torch.randint(0, 4, (300,), generator=torch.Generator().manual_seed(4)).to(device)
    keep = batched_nms(boxes, scores, idxs, 0.4)
    expected = []
    for c in range(4):
        members = torch.nonzero(idxs == c).flatten()
        expected.append(members[box_ops.nms(boxes[members], scores[members], 0.4)])
    expected = torch.cat(expected)
    expected = expected[torch.sort(scores[expected], descending=True)[1]]
    assert keep.tolist() == expected.tolist()


def test_batched_nms_works_in_float_for_half_inputs(device):
    boxes = _boxes(100, 5, device) * 500  # coordinates plus class offsets overflow float16
    scores = torch.rand(100, generator=torch.Generator().manual_seed(6)).to(device)
    idxs = torch.randint(0, 3, (100,), generator=torch.Generator().manual_seed(7)).to(device)
    half_boxes = boxes.half()
    keep = batched_nms(half_boxes, scores, idxs, 0.5)
    assert keep.tolist() == box_ops.batched_nms(half_boxes.float(), scores, idxs, 0.5).tolist()


def test_batched_nms_rejects_rotated_boxes(device):
    with pytest.raises(AssertionError):
        batched_nms(torch.zeros(3, 5, device=device), torch.zeros(3, device=device),
                    torch.zeros(3, dtype=torch.int64, device=device), 0.5)


def test_empty(device):
    keep = batched_nms(torch.zeros(0, 4, device=device), torch.zeros(0, device=device),
                       torch.zeros(0, dtype=torch.int64, device=device), 0.5)
    assert keep.shape == (0,) and keep.dtype == torch.int64
