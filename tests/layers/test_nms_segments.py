"""nms_segments (one greedy NMS per image and segment, in one call) against
torchvision's nms run segment by segment on the valid boxes."""
import pytest
import torch
from torchvision.ops import nms

from detectron2.layers.nms import nms_segments


def _clustered_boxes(num_images: int, k: int, seed: int) -> torch.Tensor:
    # Jittered copies of a few base boxes: many overlaps near any threshold.
    g = torch.Generator().manual_seed(seed)
    base_xy = torch.rand(num_images, 7, 2, generator=g) * 200
    base_wh = torch.rand(num_images, 7, 2, generator=g) * 60 + 2
    pick = torch.randint(0, 7, (num_images, k), generator=g)
    xy = base_xy.gather(1, pick[..., None].expand(-1, -1, 2)) + torch.randn(num_images, k, 2, generator=g) * 4
    wh = base_wh.gather(1, pick[..., None].expand(-1, -1, 2)) * (1 + torch.rand(num_images, k, 2, generator=g) * 0.3)
    return torch.cat([xy, xy + wh], dim=2)


def _random_bounds(k: int, num_segments: int, g: torch.Generator):
    cuts = sorted(torch.randint(0, k + 1, (num_segments - 1,), generator=g).tolist())
    return [0] + cuts + [k]


def _reference(boxes, scores, valid, bounds, thresh):
    """Per image and segment: sort by score, torchvision nms of the valid boxes."""
    keep = torch.zeros(valid.shape, dtype=torch.bool)
    for n in range(boxes.shape[0]):
        for s in range(len(bounds) - 1):
            lo, hi = bounds[s], bounds[s + 1]
            members = torch.nonzero(valid[n, lo:hi]).flatten() + lo
            if members.numel() == 0:
                continue
            kept = members[nms(boxes[n, members], scores[n, members], thresh).cpu()]
            keep[n, kept] = True
    return keep


def _sorted_by_segment(boxes, scores, bounds):
    """Sort each segment by decreasing score: the op's input contract."""
    boxes, scores = boxes.clone(), scores.clone()
    for s in range(len(bounds) - 1):
        lo, hi = bounds[s], bounds[s + 1]
        order = scores[:, lo:hi].argsort(dim=1, descending=True) + lo
        scores[:, lo:hi] = scores.gather(1, order)
        boxes[:, lo:hi] = boxes.gather(1, order[..., None].expand(-1, -1, 4))
    return boxes, scores


@pytest.mark.parametrize("seed", range(6))
def test_matches_torchvision_per_segment(device, seed):
    g = torch.Generator().manual_seed(100 + seed)
    num_images = int(torch.randint(1, 4, (1,), generator=g))
    k = int(torch.randint(1, 700, (1,), generator=g))
    bounds = _random_bounds(k, int(torch.randint(1, 6, (1,), generator=g)), g)
    boxes = _clustered_boxes(num_images, k, seed)
    scores = torch.rand(num_images, k, generator=g)
    boxes, scores = _sorted_by_segment(boxes, scores, bounds)
    valid = torch.rand(num_images, k, generator=g) > 0.2
    thresh = [0.3, 0.5, 0.7][seed % 3]
    expected = _reference(boxes.to(device), scores.to(device), valid, bounds, thresh)
    keep = nms_segments(boxes.to(device), valid.to(device), bounds, thresh)
    assert keep.dtype == torch.bool and keep.shape == valid.shape
    assert torch.equal(keep.cpu(), expected)
    assert not (keep.cpu() & ~valid).any()


def test_long_segments_cross_many_tiles(device):
    # Segments longer than several 64-box words, with heavy suppression.
    bounds = [0, 1000, 1000, 1800]
    boxes = _clustered_boxes(2, 1800, 7)
    scores = torch.rand(2, 1800, generator=torch.Generator().manual_seed(8))
    boxes, scores = _sorted_by_segment(boxes, scores, bounds)
    valid = torch.ones(2, 1800, dtype=torch.bool)
    expected = _reference(boxes.to(device), scores.to(device), valid, bounds, 0.7)
    keep = nms_segments(boxes.to(device), valid.to(device), bounds, 0.7)
    assert torch.equal(keep.cpu(), expected)
    assert 0 < int(keep.sum()) < 3600


def test_segments_never_suppress_each_other(device):
    box = torch.tensor([10.0, 10.0, 50.0, 50.0])
    boxes = box.expand(1, 6, 4).contiguous().to(device)
    valid = torch.ones(1, 6, dtype=torch.bool, device=device)
    keep = nms_segments(boxes, valid, [0, 2, 3, 6], 0.5)
    assert keep.cpu().tolist() == [[True, False, True, True, False, False]]


def test_invalid_boxes_do_not_suppress(device):
    boxes = torch.tensor([[[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0]]], device=device)
    valid = torch.tensor([[False, True]], device=device)
    assert nms_segments(boxes, valid, [0, 2], 0.5).cpu().tolist() == [[False, True]]


def test_empty_inputs(device):
    for shape in [(0, 5), (3, 0)]:
        boxes = torch.zeros(*shape, 4, device=device)
        valid = torch.ones(shape, dtype=torch.bool, device=device)
        keep = nms_segments(boxes, valid, [0, shape[1]], 0.5)
        assert keep.shape == shape


def test_bad_arguments_name_what_is_wrong():
    boxes = torch.zeros(2, 6, 4)
    valid = torch.ones(2, 6, dtype=torch.bool)
    with pytest.raises(ValueError, match="boxes"):
        nms_segments(torch.zeros(6, 4), valid, [0, 6], 0.5)
    with pytest.raises(ValueError, match="valid"):
        nms_segments(boxes, valid[:, :5], [0, 6], 0.5)
    with pytest.raises(TypeError, match="valid"):
        nms_segments(boxes, valid.float(), [0, 6], 0.5)
    with pytest.raises(TypeError, match="boxes"):
        nms_segments(boxes.long(), valid, [0, 6], 0.5)
    with pytest.raises(ValueError, match="bounds"):
        nms_segments(boxes, valid, [0, 5], 0.5)
    with pytest.raises(ValueError, match="bounds"):
        nms_segments(boxes, valid, [0, 4, 2, 6], 0.5)
    with pytest.raises(ValueError, match="bounds"):
        nms_segments(boxes, valid, list(range(7)) + [6] * 30, 0.5)


@pytest.mark.cuda
def test_cuda_equals_cpu_on_rpn_sized_batch():
    # The RPN's training shape: 4 images x 5 levels of up to 2000 boxes.
    bounds = [0, 2000, 4000, 6000, 7000, 7300]
    boxes = _clustered_boxes(4, 7300, 11)
    scores = torch.rand(4, 7300, generator=torch.Generator().manual_seed(12))
    boxes, scores = _sorted_by_segment(boxes, scores, bounds)
    valid = torch.rand(4, 7300, generator=torch.Generator().manual_seed(13)) > 0.05
    cpu = nms_segments(boxes, valid, bounds, 0.7)
    gpu = nms_segments(boxes.cuda(), valid.cuda(), bounds, 0.7)
    assert torch.equal(gpu.cpu(), cpu)
