"""ROIPooler groups boxes by level with one sort: same output as a nonzero per level."""
import pytest
import torch

from detectron2.modeling.poolers import ROIPooler, assign_boxes_to_levels, convert_boxes_to_pooler_format
from detectron2.structures import Boxes


def _boxes(n, seed, extent):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * extent * 0.8
    wh = torch.rand(n, 2, generator=g) ** 3 * extent * 0.9 + 4
    return Boxes(torch.cat([xy, xy + wh], dim=1))


@pytest.mark.parametrize("pooler_type", ["ROIAlignV2", "ROIPool"])
def test_grouped_levels_equal_per_level_nonzero(device, pooler_type):
    scales = (1 / 4, 1 / 8, 1 / 16, 1 / 32)
    pooler = ROIPooler((7, 7), scales, sampling_ratio=0, pooler_type=pooler_type)
    g = torch.Generator().manual_seed(0)
    x = [torch.randn(3, 4, 1024 // s, 1024 // s, generator=g).to(device) for s in (4, 8, 16, 32)]
    box_lists = [_boxes(n, 10 + i, 1024).to(device) for i, n in enumerate([40, 0, 75])]
    out = pooler(x, box_lists)

    rois = convert_boxes_to_pooler_format(box_lists)
    assert rois[:, 0].tolist() == [0.0] * 40 + [2.0] * 75
    levels = assign_boxes_to_levels(box_lists, 2, 5, 224, 4)
    assert len(set(levels.tolist())) > 2  # several levels really used
    expected = torch.zeros_like(out)
    for level, level_pooler in enumerate(pooler.level_poolers):
        inds = torch.nonzero(levels == level).flatten()
        expected[inds] = level_pooler(x[level], rois[inds])
    assert torch.equal(out, expected)
