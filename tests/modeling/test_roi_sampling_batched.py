"""ROIHeads.label_and_sample_proposals: the batched sampling (one set of host syncs per
batch) equals the per-image loop, draw for draw, on random proposals and targets."""
import os
import sys

import pytest
import torch

from detectron2.modeling import batched_matching, build_roi_heads
from detectron2.modeling.roi_heads.roi_heads import StandardROIHeads
from detectron2.modeling.matcher import Matcher
from detectron2.structures import Boxes, Instances, RotatedBoxes
from detectron2.utils.events import EventStorage

sys.path.insert(0, os.path.dirname(__file__))
import roi_heads_testing as T  # noqa: E402


class _LoopHeads(StandardROIHeads):
    # Overriding the sampling makes label_and_sample_proposals take its per-image loop.
    def _sample_proposals(self, *args):
        return super()._sample_proposals(*args)


def _random_instances(num_props, num_gt, seed, device):
    g = torch.Generator().manual_seed(seed)
    h, w = T.IMAGE_SIZE

    def boxes(n, scale):
        xy = torch.rand(n, 2, generator=g) * torch.tensor([w * 0.6, h * 0.6])
        wh = torch.rand(n, 2, generator=g) * torch.tensor([w * scale, h * scale]) + 1
        return Boxes(torch.cat([xy, xy + wh], dim=1).to(device))

    props = Instances(T.IMAGE_SIZE, proposal_boxes=boxes(num_props, 0.4))
    props.objectness_logits = torch.randn(num_props, generator=g).to(device)
    gt = Instances(T.IMAGE_SIZE, gt_boxes=boxes(num_gt, 0.4))
    gt.gt_classes = torch.randint(0, 3, (num_gt,), generator=g).to(device)
    return props, gt


def _sample(heads, props, gts, seed):
    torch.manual_seed(seed)
    with EventStorage() as storage:
        out = heads.label_and_sample_proposals(props, gts)
        counts = (storage.latest()["roi_head/num_fg_samples"][0], storage.latest()["roi_head/num_bg_samples"][0])
    return out, counts


def _assert_same_instances(batched, looped):
    for a, b in zip(batched, looped):
        assert set(a.get_fields()) == set(b.get_fields())
        for name in a.get_fields():
            va, vb = a.get(name), b.get(name)
            va = va.tensor if isinstance(va, (Boxes, RotatedBoxes)) else va
            vb = vb.tensor if isinstance(vb, (Boxes, RotatedBoxes)) else vb
            assert torch.equal(va, vb), name


@pytest.mark.parametrize("append_gt", [True, False])
@pytest.mark.parametrize("group_budget", [1 << 26, 100])  # one group; one image a group
def test_batched_sampling_equals_per_image_loop(device, append_gt, group_budget, monkeypatch):
    monkeypatch.setattr(batched_matching, "MAX_GROUP_ELEMENTS", group_budget)
    monkeypatch.setattr(batched_matching, "BATCH_ON_CPU", True)
    cfg = T.small_cfg()
    cfg.MODEL.MASK_ON = False
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 16
    cfg.MODEL.ROI_HEADS.PROPOSAL_APPEND_GT = append_gt
    heads = build_roi_heads(cfg, T.input_shape()).to(device).train()
    assert isinstance(heads, StandardROIHeads) and heads._can_batch_sampling()

    data = [_random_instances(n, g, 40 + i, device) for i, (n, g) in enumerate([(60, 4), (25, 0), (90, 7), (3, 2)])]
    props, gts = [p for p, _ in data], [g for _, g in data]
    gts[2].gt_boxes.tensor[6] = gts[2].gt_boxes.tensor[2]  # tied gt rows
    batched, counts_batched = _sample(heads, props, gts, 3)
    heads.__class__ = _LoopHeads  # same weights and settings, the per-image loop
    assert not heads._can_batch_sampling()
    looped, counts_looped = _sample(heads, props, gts, 3)
    assert counts_batched == counts_looped
    _assert_same_instances(batched, looped)


def test_select_foreground_over_several_images(device):
    from detectron2.modeling.roi_heads.roi_heads import select_foreground_proposals

    g = torch.Generator().manual_seed(4)
    proposals = []
    for n in [7, 0, 12, 5]:
        inst = Instances(T.IMAGE_SIZE, proposal_boxes=Boxes(torch.rand(n, 4, generator=g).to(device)))
        inst.gt_classes = torch.randint(-1, 4, (n,), generator=g).to(device)
        proposals.append(inst)
    fg, masks = select_foreground_proposals(proposals, bg_label=3)
    for inst, fg_inst, mask in zip(proposals, fg, masks):
        expected = (inst.gt_classes != -1) & (inst.gt_classes != 3)
        assert torch.equal(mask, expected)
        assert torch.equal(fg_inst.gt_classes, inst.gt_classes[expected])
        assert torch.equal(fg_inst.proposal_boxes.tensor, inst.proposal_boxes.tensor[expected])
    assert sum(len(f) for f in fg) > 0


def _random_rotated(num_props, num_gt, seed, device):
    g = torch.Generator().manual_seed(seed)

    def boxes(n):
        centers = torch.rand(n, 2, generator=g) * 50 + 7
        sizes = torch.rand(n, 2, generator=g) * 20 + 2
        angles = torch.rand(n, 1, generator=g) * 360 - 180
        return RotatedBoxes(torch.cat([centers, sizes, angles], dim=1).to(device))

    props = Instances(T.IMAGE_SIZE, proposal_boxes=boxes(num_props))
    props.objectness_logits = torch.randn(num_props, generator=g).to(device)
    gt = Instances(T.IMAGE_SIZE, gt_boxes=boxes(num_gt))
    gt.gt_classes = torch.randint(0, 3, (num_gt,), generator=g).to(device)
    return props, gt


def test_rotated_heads_batched_sampling_equals_per_image_loop(device, monkeypatch):
    # RROIHeads' rotated IoU is computed per image, then matched as a batch.
    monkeypatch.setattr(batched_matching, "BATCH_ON_CPU", True)
    cfg = T.small_cfg("RROIHeads")
    cfg.MODEL.ROI_BOX_HEAD.POOLER_TYPE = "ROIAlignRotated"
    cfg.MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS = (10.0, 10.0, 5.0, 5.0, 1.0)
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 16
    heads = build_roi_heads(cfg, T.input_shape()).to(device).train()
    assert heads._can_batch_sampling()
    data = [_random_rotated(n, g, 70 + i, device) for i, (n, g) in enumerate([(40, 3), (12, 0), (55, 6)])]
    props, gts = [p for p, _ in data], [g for _, g in data]
    batched, counts_batched = _sample(heads, props, gts, 5)
    heads.proposal_matcher.__class__ = type("LoopMatcher", (Matcher,), {})  # not a Matcher: the loop
    assert not heads._can_batch_sampling()
    looped, counts_looped = _sample(heads, props, gts, 5)
    assert counts_batched == counts_looped
    assert sum(int((b.gt_classes < 3).sum()) for b in batched) > 0  # some foreground
    _assert_same_instances(batched, looped)
