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


# --- anchor labelling: batched sampling equals the per-image loop, draw for draw ---------

from rcnn_toys import toy_cfg  # noqa: E402

from detectron2.layers import ShapeSpec  # noqa: E402
from detectron2.modeling.proposal_generator import RPN  # noqa: E402
from detectron2.modeling.sampling import subsample_labels, subsample_labels_batched  # noqa: E402
from detectron2.structures import Boxes, Instances, pairwise_iou  # noqa: E402

_SHAPES = {"p2": ShapeSpec(channels=8, stride=4), "p3": ShapeSpec(channels=8, stride=8)}


class _PerImageRPN(RPN):
    # Another IoU function object: label_and_sample_anchors takes its per-image loop.
    _pairwise_iou = staticmethod(lambda a, b: pairwise_iou(a, b))


def _random_gt(image_size, num, seed):
    g = torch.Generator().manual_seed(seed)
    h, w = image_size
    xy = torch.rand(num, 2, generator=g) * torch.tensor([w * 0.7, h * 0.7])
    wh = torch.rand(num, 2, generator=g) * torch.tensor([w * 0.5, h * 0.5]) + 2
    return Instances(image_size, gt_boxes=Boxes(torch.cat([xy, xy + wh], dim=1)))


@pytest.mark.parametrize("boundary", [-1.0, 0.0])
def test_label_and_sample_batched_equals_per_image(device, boundary):
    cfg = toy_cfg()
    cfg.MODEL.RPN.BOUNDARY_THRESH = boundary
    cfg.MODEL.RPN.BATCH_SIZE_PER_IMAGE = 32
    sizes = [(64, 80), (56, 48), (60, 60), (64, 64)]
    gts = [_random_gt(s, n, 30 + i) for i, (s, n) in enumerate(zip(sizes, [3, 0, 9, 1]))]
    gts = [g.to(device) for g in gts]
    feats = [torch.zeros(len(sizes), 8, 16, 20, device=device), torch.zeros(len(sizes), 8, 8, 10, device=device)]
    results = []
    for cls in (RPN, _PerImageRPN):
        rpn = cls(cfg, _SHAPES).to(device)
        anchors = rpn.anchor_generator(feats)
        torch.manual_seed(5)
        if device == "cuda" or str(device).startswith("cuda"):
            torch.cuda.manual_seed_all(5)
        results.append(rpn.label_and_sample_anchors(anchors, gts))
    (labels_a, boxes_a), (labels_b, boxes_b) = results
    for la, lb, ba, bb in zip(labels_a, labels_b, boxes_a, boxes_b):
        assert torch.equal(la, lb)
        assert torch.equal(ba, bb)
    assert any(int((la == 1).sum()) > 0 for la in labels_a)


def test_subsample_batched_same_draws_as_loop(device):
    g = torch.Generator().manual_seed(3)
    labels = torch.randint(-1, 3, (5, 400), generator=g).to(device)
    labels[2] = -1  # a row with nothing to sample
    torch.manual_seed(9)
    batched = subsample_labels_batched(labels, 64, 0.25, 0)
    torch.manual_seed(9)
    looped = [subsample_labels(row, 64, 0.25, 0) for row in labels]
    for (pa, na), (pb, nb) in zip(batched, looped):
        assert torch.equal(pa, pb) and torch.equal(na, nb)
    with pytest.raises(ValueError, match="labels"):
        subsample_labels_batched(labels[0], 64, 0.25, 0)
