import pytest
import torch
import torchvision

from detectron2.layers import ROIAlign, roi_align


def test_roi_align_is_torchvision_and_module_matches(device):
    assert roi_align is torchvision.ops.roi_align
    x = torch.randn(2, 3, 20, 20, device=device)
    rois = torch.tensor([[0, 1.0, 2.0, 10.0, 12.0], [1, 4.5, 3.0, 19.0, 9.5]], device=device)
    for aligned in (True, False):
        m = ROIAlign((4, 5), 0.5, 2, aligned=aligned)
        torch.testing.assert_close(m(x, rois), torchvision.ops.roi_align(x, rois, (4, 5), 0.5, 2, aligned))
    assert ROIAlign(7, 1.0, 0).aligned is True


def test_roi_align_aligned_shifts_by_half_pixel():
    x = torch.arange(100.0).reshape(1, 1, 10, 10)
    box = torch.tensor([[0, 2.0, 2.0, 4.0, 4.0]])
    # aligned: the box covers pixels 2 and 3 exactly; samples at their centres (indices
    # 2 and 3) average to index 2.5 in both directions; the value at (y, x) is 10y + x.
    out = ROIAlign(1, 1.0, 2, aligned=True)(x, box)
    assert out.item() == pytest.approx(2.5 * 10 + 2.5)
    legacy = ROIAlign(1, 1.0, 2, aligned=False)(x, box)
    assert legacy.item() == pytest.approx(3.0 * 10 + 3.0)  # half a pixel further


def test_roi_align_casts_rois_and_checks_shape():
    x = torch.randn(1, 2, 8, 8, dtype=torch.float64)
    rois = torch.tensor([[0, 1.0, 1.0, 5.0, 5.0]])
    out = ROIAlign(2, 1.0, 0)(x, rois)
    assert out.dtype == torch.float64
    with pytest.raises(AssertionError):
        ROIAlign(2, 1.0, 0)(x, rois[:, :4])
    assert repr(ROIAlign(2, 0.25, 0, False)) == "ROIAlign(output_size=2, spatial_scale=0.25, sampling_ratio=0, aligned=False)"


def test_roi_align_module_scripts():
    x = torch.randn(1, 2, 8, 8)
    rois = torch.tensor([[0, 1.0, 1.0, 5.0, 5.0]])
    m = ROIAlign((2, 3), 1.0, 0)
    torch.testing.assert_close(torch.jit.script(m)(x, rois), m(x, rois))
