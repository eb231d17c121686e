"""find_top_rpn_proposals (all images and levels in one segmented NMS) against the
plain per-image, per-level reference, on random inputs of several images."""
import pytest
import torch
from rpn_reference import reference_find_top_rpn_proposals

from detectron2.modeling.proposal_generator.proposal_utils import find_top_rpn_proposals


def _levels(num_images, sizes, extent, seed):
    g = torch.Generator().manual_seed(seed)
    proposals, logits = [], []
    for hwa in sizes:
        xy = torch.rand(num_images, hwa, 2, generator=g) * extent
        wh = torch.rand(num_images, hwa, 2, generator=g) * extent / 4 + 0.5
        proposals.append(torch.cat([xy - wh / 2, xy + wh / 2], dim=2))
        logits.append(torch.randn(num_images, hwa, generator=g))
    return proposals, logits


def _assert_same(ours, ref):
    assert len(ours) == len(ref)
    for inst, (boxes, scores) in zip(ours, ref):
        assert torch.equal(inst.proposal_boxes.tensor.cpu(), boxes.cpu())
        assert torch.equal(inst.objectness_logits.cpu(), scores.cpu())


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("training", [True, False])
def test_matches_reference_on_random_batches(device, seed, training):
    proposals, logits = _levels(3, [700, 400, 90, 12], 120, seed)
    sizes = [(120, 100), (90, 120), (64, 64)]
    args = (sizes, [0.5, 0.7][seed % 2], 300, 250, [0.0, 3.0][seed // 2], training)
    proposals = [p.to(device) for p in proposals]
    logits = [s.to(device) for s in logits]
    ours = find_top_rpn_proposals(proposals, logits, *args)
    _assert_same(ours, reference_find_top_rpn_proposals(proposals, logits, *args))


def test_inference_drops_non_finite_like_reference(device):
    proposals, logits = _levels(2, [300, 50], 80, 9)
    proposals[0][0, 5, 2] = float("nan")
    proposals[1][1, 3, 0] = float("inf")
    logits[0][1, 7] = float("-inf")
    proposals = [p.to(device) for p in proposals]
    logits = [s.to(device) for s in logits]
    args = ([(80, 80), (70, 90)], 0.7, 100, 120, 0.0, False)
    ours = find_top_rpn_proposals(proposals, logits, *args)
    _assert_same(ours, reference_find_top_rpn_proposals(proposals, logits, *args))
    with pytest.raises(FloatingPointError):
        find_top_rpn_proposals(proposals, logits, *args[:-1], True)


@pytest.mark.cuda
def test_cuda_rpn_training_shape_matches_reference():
    # Batch 8, five levels, 2000 boxes a level: the Mask R-CNN training configuration.
    proposals, logits = _levels(8, [20000, 5000, 2000, 1500, 819], 800, 21)
    proposals = [p.cuda() for p in proposals]
    logits = [s.cuda() for s in logits]
    args = ([(800, 1066)] * 4 + [(768, 1333)] * 4, 0.7, 2000, 1000, 0.0, True)
    ours = find_top_rpn_proposals(proposals, logits, *args)
    _assert_same(ours, reference_find_top_rpn_proposals(proposals, logits, *args))
