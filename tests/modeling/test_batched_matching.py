"""Batched matching (Matcher.match_batch, match_images, batched_pairwise_iou) against
the per-image path and a plain numpy matcher; RPN / RRPN / ROI-head labelling through
the batched path equals their per-image loop, draw for draw."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from rcnn_toys import toy_cfg

from detectron2.layers import ShapeSpec
from detectron2.layers._errors import ValueAssertionError
from detectron2.modeling import batched_matching
from detectron2.modeling.batched_matching import _groups, match_images, pad_tensors, row_mask
from detectron2.modeling.matcher import Matcher
from detectron2.modeling.proposal_generator import RPN
from detectron2.structures import Boxes, Instances, RotatedBoxes, pairwise_iou, pairwise_iou_rotated
from detectron2.structures.boxes import batched_pairwise_iou
from detectron2.utils.events import EventStorage


class _LoopMatcher(Matcher):
    """Not exactly a Matcher: the RPN and ROI heads then take their per-image loops."""


def _numpy_match(quality, thresholds, labels, low_quality):
    """Textbook matcher on one (G, N) matrix: argmax with the first index on ties."""
    g, n = quality.shape
    if g == 0:
        return np.zeros(n, np.int64), np.full(n, labels[0], np.int8)
    best = quality.max(axis=0)
    matches = quality.argmax(axis=0)
    bounds = [-np.inf] + list(thresholds) + [np.inf]
    out = np.empty(n, np.int8)
    for label, low, high in zip(labels, bounds[:-1], bounds[1:]):
        out[(best >= low) & (best < high)] = label
    if low_quality:
        out[(quality == quality.max(axis=1, keepdims=True)).any(axis=0)] = 1
    return matches, out


def _random_boxes(g, n, size=100.0, integer=False):
    xy = torch.rand(n, 2, generator=g) * size
    wh = torch.rand(n, 2, generator=g) * size / 2 + 1
    boxes = torch.cat([xy, xy + wh], dim=1)
    return boxes.round() if integer else boxes


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(0, 5), min_size=1, max_size=4),
    n=st.integers(1, 12),
    low_quality=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_match_batch_equals_per_image_call_and_numpy(counts, n, low_quality, seed):
    g = torch.Generator().manual_seed(seed)
    matcher = Matcher([0.3, 0.5], [0, -1, 1], allow_low_quality_matches=low_quality)
    width = max(counts)
    # Coarse values: many ties, which the first-index rule must break the same way.
    quality = torch.randint(0, 5, (len(counts), width, n), generator=g).float() / 4
    valid = row_mask(counts, width, torch.device("cpu"))
    # Padding rows hold anything, even better values: they must never match.
    quality = torch.where(valid[..., None], quality, torch.full_like(quality, 7.0))
    matches, labels = matcher.match_batch(quality, valid)
    assert matches.dtype == torch.int64 and labels.dtype == torch.int8
    for i, c in enumerate(counts):
        m_ref, l_ref = matcher(quality[i, :c])
        assert torch.equal(matches[i], m_ref) and torch.equal(labels[i], l_ref)
        m_np, l_np = _numpy_match(quality[i, :c].numpy(), [0.3, 0.5], [0, -1, 1], low_quality)
        assert np.array_equal(matches[i].numpy(), m_np) and np.array_equal(labels[i].numpy(), l_np)


def test_match_batch_checks_its_input():
    matcher = Matcher([0.5], [0, 1])
    valid = torch.tensor([[True, False]])
    with pytest.raises(AssertionError, match=">= 0"):
        matcher.match_batch(torch.tensor([[[-0.1, 0.5], [0.2, 0.2]]]), valid)
    with pytest.raises(AssertionError, match=">= 0"):
        matcher.match_batch(torch.tensor([[[float("nan"), 0.5], [0.2, 0.2]]]), valid)
    # A negative value in a padding row is not the caller's error.
    matches, labels = matcher.match_batch(torch.tensor([[[0.6, 0.1], [-5.0, 9.0]]]), valid)
    assert matches.tolist() == [[0, 0]] and labels.tolist() == [[1, 0]]
    with pytest.raises(ValueAssertionError, match="gt_valid"):
        matcher.match_batch(torch.zeros(1, 2, 3), torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(ValueAssertionError, match="gt_valid"):
        matcher.match_batch(torch.zeros(1, 2, 3), torch.ones(1, 2))
    with pytest.raises(ValueAssertionError, match=r"\(B, M, N\)"):
        matcher.match_batch(torch.zeros(2, 3), torch.ones(2, dtype=torch.bool))


def test_batched_pairwise_iou_is_bitwise_pairwise_iou(device):
    g = torch.Generator().manual_seed(0)
    gts = [_random_boxes(g, k).to(device) for k in (3, 0, 7)]
    props = [_random_boxes(g, k).to(device) for k in (20, 5, 11)]
    gt_padded, _ = pad_tensors(gts)
    prop_padded, _ = pad_tensors(props)
    batched = batched_pairwise_iou(gt_padded, prop_padded)
    assert batched.shape == (3, 7, 20)
    for i, (gt, prop) in enumerate(zip(gts, props)):
        assert torch.equal(batched[i, : len(gt), : len(prop)], pairwise_iou(Boxes(gt), Boxes(prop)))
        assert not batched[i, len(gt):].any()  # zero padding overlaps nothing
    shared = batched_pairwise_iou(gt_padded, props[0])
    for i, gt in enumerate(gts):
        assert torch.equal(shared[i, : len(gt)], pairwise_iou(Boxes(gt), Boxes(props[0])))


def test_batched_pairwise_iou_bad_input():
    with pytest.raises(ValueError, match="boxes1 must be a"):
        batched_pairwise_iou(torch.zeros(2, 3, 5), torch.zeros(4, 4))
    with pytest.raises(ValueError, match=r"boxes1 must be \(B, N, 4\)"):
        batched_pairwise_iou(torch.zeros(3, 4), torch.zeros(4, 4))
    with pytest.raises(ValueError, match="batch sizes differ"):
        batched_pairwise_iou(torch.zeros(2, 3, 4), torch.zeros(3, 1, 4))
    with pytest.raises(ValueError, match="boxes2 must be a"):
        batched_pairwise_iou(torch.zeros(2, 3, 4), [[0, 0, 1, 1]])


@settings(max_examples=100, deadline=None)
@given(
    rows=st.lists(st.integers(0, 30), min_size=1, max_size=8),
    cols=st.lists(st.integers(1, 30), min_size=8, max_size=8),
    budget=st.integers(1, 3000),
    waste=st.integers(0, 500),
)
def test_groups_partition_the_batch_within_budget_and_waste(rows, cols, budget, waste):
    cols = cols[: len(rows)]
    groups = _groups(rows, cols, budget, waste)
    assert sorted(i for grp in groups for i in grp) == list(range(len(rows)))
    for grp in groups:
        padded = len(grp) * max(rows[i] for i in grp) * max(cols[i] for i in grp)
        real = sum(rows[i] * cols[i] for i in grp)
        assert len(grp) == 1 or (padded <= budget and padded - real <= max(real, waste))
    # Sorted by gt count: no group's rows interleave with another's.
    spans = sorted((min(rows[i] for i in grp), max(rows[i] for i in grp)) for grp in groups)
    assert all(hi <= lo for (_, hi), (lo, _) in zip(spans[:-1], spans[1:]))


def test_groups_keep_a_coco_like_batch_in_few_groups():
    # 16 images of 268k anchors: gt counts as in COCO, few large groups, not 16.
    counts = [1, 2, 2, 3, 4, 5, 6, 7, 8, 10, 12, 15, 20, 26, 40, 90]
    groups = _groups(counts, [268_506] * 16, 1 << 26, 1 << 20)
    assert len(groups) <= 5
    padded = sum(len(g) * max(counts[i] for i in g) for g in groups)
    assert padded <= 2 * sum(counts)


@pytest.mark.parametrize("budget", [1 << 26, 1])
def test_match_images_equals_the_per_image_loop(device, budget):
    g = torch.Generator().manual_seed(3)
    gts = [Boxes(_random_boxes(g, k, integer=True).to(device)) for k in (4, 0, 9, 1)]
    gts[2].tensor[5] = gts[2].tensor[1]  # a duplicate gt: tied rows
    props = [Boxes(_random_boxes(g, k, integer=True).to(device)) for k in (30, 12, 0, 25)]
    anchors = Boxes(_random_boxes(g, 40, integer=True).to(device))
    matcher = Matcher([0.3, 0.7], [0, -1, 1], allow_low_quality_matches=True)
    for boxes in (anchors, props):
        matches, labels = match_images(matcher, pairwise_iou, gts, boxes, max_elements=budget)
        per_image = [anchors] * len(gts) if boxes is anchors else props
        assert matches.shape == (4, max(len(b) for b in per_image))
        for i, (gt, b) in enumerate(zip(gts, per_image)):
            m_ref, l_ref = matcher(pairwise_iou(gt, b))
            assert torch.equal(matches[i, : len(b)], m_ref) and torch.equal(labels[i, : len(b)], l_ref)


def test_match_images_with_another_quality(device):
    g = torch.Generator().manual_seed(5)

    def rotated(k):
        t = torch.cat([torch.rand(k, 2, generator=g) * 50, torch.rand(k, 2, generator=g) * 20 + 2], dim=1)
        return RotatedBoxes(torch.cat([t, torch.rand(k, 1, generator=g) * 360 - 180], dim=1).to(device))

    gts, props = [rotated(3), rotated(0), rotated(6)], [rotated(15), rotated(9), rotated(4)]
    matcher = Matcher([0.4, 0.5], [0, -1, 1], allow_low_quality_matches=True)
    matches, labels = match_images(matcher, pairwise_iou_rotated, gts, props)
    for i, (gt, b) in enumerate(zip(gts, props)):
        m_ref, l_ref = matcher(pairwise_iou_rotated(gt, b))
        assert torch.equal(matches[i, : len(b)], m_ref) and torch.equal(labels[i, : len(b)], l_ref)


def test_match_images_bad_input():
    matcher = Matcher([0.5], [0, 1])
    with pytest.raises(ValueError, match="no images"):
        match_images(matcher, pairwise_iou, [], Boxes(torch.zeros(3, 4)))
    with pytest.raises(ValueError, match="one per image"):
        match_images(matcher, pairwise_iou, [Boxes(torch.zeros(1, 4))], [Boxes(torch.zeros(2, 4))] * 2)


def test_batching_is_for_asynchronous_devices():
    # The CPU takes the (there faster) per-image loop unless told otherwise.
    assert not batched_matching.batch_matching_on(torch.device("cpu"))
    assert batched_matching.batch_matching_on(torch.device("cuda", 0))


def _rpn_labels(rpn, anchors, gts, seed):
    torch.manual_seed(seed)
    return rpn.label_and_sample_anchors(anchors, gts)


@pytest.mark.parametrize("boundary_thresh", [-1, 0, 5])
def test_rpn_batched_labels_equal_the_per_image_loop(device, boundary_thresh, monkeypatch):
    monkeypatch.setattr(batched_matching, "BATCH_ON_CPU", True)
    cfg = toy_cfg()
    cfg.MODEL.RPN.BATCH_SIZE_PER_IMAGE = 24
    cfg.MODEL.RPN.BOUNDARY_THRESH = boundary_thresh
    torch.manual_seed(0)
    rpn = RPN(cfg, {"p2": ShapeSpec(channels=8, stride=4), "p3": ShapeSpec(channels=8, stride=8)}).to(device).train()
    feats = [torch.zeros(1, 8, 16, 20, device=device), torch.zeros(1, 8, 8, 10, device=device)]
    anchors = rpn.anchor_generator(feats)
    g = torch.Generator().manual_seed(1)
    sizes = [(64, 80), (56, 48), (64, 64), (40, 80)]
    gts = []
    for (h, w), k in zip(sizes, (3, 0, 6, 1)):
        boxes = _random_boxes(g, k, size=min(h, w), integer=True)
        gts.append(Instances((h, w), gt_boxes=Boxes(boxes.to(device))))
    gts[2].gt_boxes.tensor[4] = gts[2].gt_boxes.tensor[0]
    for budget in (1 << 26, 200):  # one group, then about one image per group
        monkeypatch.setattr(batched_matching, "MAX_GROUP_ELEMENTS", budget)
        batched = _rpn_labels(rpn, anchors, gts, 7)
        rpn.anchor_matcher.__class__ = _LoopMatcher
        looped = _rpn_labels(rpn, anchors, gts, 7)
        rpn.anchor_matcher.__class__ = Matcher
        for (lab_b, box_b), (lab_l, box_l) in zip(zip(*batched), zip(*looped)):
            assert lab_b.dtype == lab_l.dtype and torch.equal(lab_b, lab_l)
            assert torch.equal(box_b, box_l)
        assert sum(int((lab == 1).sum()) for lab in batched[0]) > 0
