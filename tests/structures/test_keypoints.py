import math

import numpy as np
import pytest
import torch

from detectron2.structures import Boxes, Instances, Keypoints, heatmaps_to_keypoints
from detectron2.structures.keypoints import keypoints_to_heatmap


def _cubic_weights(t, a=-0.75):
    # Keys' cubic convolution kernel with a = -0.75 (the kernel torch uses for bicubic).
    def near(x):
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def _resize_matrix(n_in, n_out):
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        src = (i + 0.5) * n_in / n_out - 0.5  # half-pixel centres, no clamping for cubic
        f = math.floor(src)
        for k, w in zip(range(-1, 3), _cubic_weights(src - f)):
            m[i, min(max(f + k, 0), n_in - 1)] += w
    return m


def _reference(maps, rois):
    maps, rois = maps.double().numpy(), rois.double().numpy()
    out = np.zeros((maps.shape[0], maps.shape[1], 4))
    for i, (x0, y0, x1, y1) in enumerate(rois):
        w, h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
        big_w, big_h = math.ceil(w), math.ceil(h)
        mx, my = _resize_matrix(maps.shape[3], big_w), _resize_matrix(maps.shape[2], big_h)
        for k in range(maps.shape[1]):
            resized = my @ maps[i, k] @ mx.T
            yi, xi = np.unravel_index(np.argmax(resized), resized.shape)
            logit = resized[yi, xi]
            score = 1.0 / np.exp(maps[i, k] - logit).sum()
            out[i, k] = [(xi + 0.5) * w / big_w + x0, (yi + 0.5) * h / big_h + y0, logit, score]
    return out


def test_heatmaps_to_keypoints_matches_numpy_reference():
    g = torch.Generator().manual_seed(3)
    maps = torch.randn(4, 5, 14, 14, generator=g) * 3
    rois = torch.tensor([[0.0, 0.0, 56.0, 56.0], [10.5, 3.25, 40.0, 80.75], [5.0, 5.0, 5.4, 5.2], [1.0, 2.0, 20.0, 9.0]])
    out = heatmaps_to_keypoints(maps, rois)
    assert out.shape == (4, 5, 4) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), _reference(maps, rois), rtol=1e-4, atol=1e-4)


def test_heatmaps_to_keypoints_peak_location():
    # Same map and roi size: bicubic is the identity, the peak gives x, y + 0.5 + offset.
    maps = torch.zeros(1, 2, 8, 8)
    maps[0, 0, 3, 5] = 10.0
    maps[0, 1, 6, 1] = 4.0
    out = heatmaps_to_keypoints(maps, torch.tensor([[100.0, 200.0, 108.0, 208.0]]))
    torch.testing.assert_close(out[0, :, :3], torch.tensor([[105.5, 203.5, 10.0], [101.5, 206.5, 4.0]]))
    expected_score = 1.0 / (math.exp(0.0) + 63 * math.exp(-10.0))
    assert out[0, 0, 3].item() == pytest.approx(expected_score, rel=1e-5)
    assert heatmaps_to_keypoints(torch.zeros(0, 2, 8, 8), torch.zeros(0, 4)).shape == (0, 2, 4)


def test_keypoints_to_heatmap_hand_computed():
    kp = torch.tensor(
        [[[3.0, 7.0, 2.0], [10.0, 10.0, 1.0], [4.0, 4.0, 0.0], [-1.0, 5.0, 2.0], [12.0, 2.0, 2.0]]]
    )
    rois = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    heatmaps, valid = Keypoints(kp).to_heatmap(rois, 5)
    # (3, 7) -> cell (1, 3); (10, 10) lies on the far edges -> last cell; invisible,
    # left-of-box and right-of-box keypoints are invalid and give index 0.
    assert valid.tolist() == [[1, 1, 0, 0, 0]]
    assert heatmaps.tolist() == [[3 * 5 + 1, 4 * 5 + 4, 0, 0, 0]]
    assert heatmaps.dtype == torch.int64
    h, v = keypoints_to_heatmap(kp[:0], torch.zeros(0, 4), 5)
    assert h.numel() == 0 and v.numel() == 0


def test_keypoints_container():
    kp = Keypoints([[[1.0, 2.0, 2.0], [3.0, 4.0, 0.0]], [[5.0, 6.0, 1.0], [7.0, 8.0, 2.0]]])
    assert kp.tensor.shape == (2, 2, 3) and kp.tensor.dtype == torch.float32 and len(kp) == 2
    assert kp[1].tensor.shape == (1, 2, 3) and kp[1].tensor[0, 0, 0] == 5.0
    assert kp[-1].tensor[0, 1, 0] == 7.0
    assert kp[0:1].tensor.shape == (1, 2, 3)
    assert kp[torch.tensor([False, True])].tensor[0, 0, 0] == 5.0
    assert kp[torch.tensor([1, 1])].tensor.shape == (2, 2, 3)
    assert repr(kp) == "Keypoints(num_instances=2)"
    cat = Keypoints.cat([kp, kp[0]])
    assert len(cat) == 3 and isinstance(cat, Keypoints)
    with pytest.raises(ValueError):
        Keypoints.cat([])
    with pytest.raises(TypeError):
        Keypoints.cat([kp, Boxes(torch.zeros(1, 4))])
    for bad in (torch.zeros(2, 3), torch.zeros(2, 3, 2)):
        with pytest.raises(ValueError, match=r"\(N, K, 3\)"):
            Keypoints(bad)
    inst = Instances((10, 10), gt_keypoints=kp)
    assert len(inst[torch.tensor([True, False])].gt_keypoints) == 1


def test_keypoints_device(device):
    kp = Keypoints(torch.rand(3, 4, 3) * 10).to(device)
    assert kp.device.type == device.type
    rois = torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 3, device=device)
    h, v = kp.to_heatmap(rois, 7)
    h_cpu, v_cpu = kp.to("cpu").to_heatmap(rois.cpu(), 7)
    torch.testing.assert_close(h.cpu(), h_cpu)
    torch.testing.assert_close(v.cpu(), v_cpu)
    maps = torch.randn(3, 4, 14, 14, device=device)
    out = heatmaps_to_keypoints(maps, rois)
    torch.testing.assert_close(out.cpu(), heatmaps_to_keypoints(maps.cpu(), rois.cpu()), atol=1e-4, rtol=1e-4)


def test_scripted_heatmaps_to_keypoints():
    scripted = torch.jit.script(heatmaps_to_keypoints)
    maps = torch.randn(2, 3, 14, 14)
    rois = torch.tensor([[0.0, 0.0, 20.0, 30.0], [2.0, 3.0, 9.0, 9.0]])
    torch.testing.assert_close(scripted(maps, rois), heatmaps_to_keypoints(maps, rois))
