import math

import pytest
import torch
import torchvision

from detectron2.layers import ROIAlignRotated, roi_align_rotated
from detectron2.layers._ops import ops
from roi_align_rotated_ref import roi_align_rotated_ref


def random_rois(n, batch, height, width, scale=1.0, seed=0, angles=True, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    size = torch.tensor([width, height]) / scale
    ctr = torch.rand(n, 2, generator=g) * size * 1.2 - 0.1 * size
    wh = torch.rand(n, 2, generator=g) * size * 0.6 + 0.5
    angle = (torch.rand(n, 1, generator=g) * 360 - 180) if angles else torch.zeros(n, 1)
    idx = torch.randint(0, batch, (n, 1), generator=g).to(torch.float32)
    return torch.cat([idx, ctr, wh, angle], dim=1).to(dtype)


def forward(x, rois, out=(7, 7), scale=1.0, ratio=0):
    return ops().roi_align_rotated_forward(x, rois, scale, out[0], out[1], ratio)


@pytest.mark.parametrize("ratio", [0, 1, 2])
@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_matches_reference(device, ratio, scale):
    x = torch.randn(2, 3, 19, 23, dtype=torch.float64, device=device)
    rois = random_rois(12, 2, 19, 23, scale=scale, seed=ratio).to(device)
    out = forward(x, rois, (5, 4), scale, ratio)
    ref = roi_align_rotated_ref(x, rois, (5, 4), scale, ratio)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)


def test_angle_zero_matches_torchvision(device):
    x = torch.randn(2, 4, 30, 40, device=device)
    rois = random_rois(20, 2, 30, 40, scale=0.25, angles=False, dtype=torch.float32).to(device)
    boxes = torch.cat([rois[:, :1], rois[:, 1:3] - rois[:, 3:5] / 2, rois[:, 1:3] + rois[:, 3:5] / 2], dim=1)
    for ratio in (0, 2):
        ours = forward(x, rois, (7, 7), 0.25, ratio)
        theirs = torchvision.ops.roi_align(x, boxes, (7, 7), 0.25, ratio, aligned=True)
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_module_matches_function_and_repr(device):
    x = torch.randn(1, 2, 16, 16, device=device)
    rois = random_rois(5, 1, 16, 16, dtype=torch.float32).to(device)
    m = ROIAlignRotated((3, 4), 1.0, 2)
    torch.testing.assert_close(m(x, rois), forward(x, rois, (3, 4), 1.0, 2))
    assert repr(m) == "ROIAlignRotated(output_size=(3, 4), spatial_scale=1.0, sampling_ratio=2)"
    square = ROIAlignRotated(3, 1.0, 0)(x, rois)
    assert square.shape == (5, 2, 3, 3)


@pytest.mark.parametrize("ratio", [0, 2])
def test_gradcheck(device, ratio):
    x = torch.randn(2, 2, 9, 11, dtype=torch.float64, device=device, requires_grad=True)
    rois = random_rois(6, 2, 9, 11, seed=3).to(device)
    # nondet_tol: CUDA accumulates with atomicAdd, so two backward runs may differ in the last bits.
    assert torch.autograd.gradcheck(lambda t: roi_align_rotated(t, rois, (3, 2), 1.0, ratio), (x,), nondet_tol=1e-12)


def test_backward_matches_reference_autograd(device):
    x = torch.randn(2, 3, 17, 13, dtype=torch.float64, device=device, requires_grad=True)
    rois = random_rois(10, 2, 17, 13, scale=0.5, seed=5).to(device)
    grad = torch.randn(10, 3, 4, 4, dtype=torch.float64, device=device)
    (ours,) = torch.autograd.grad(roi_align_rotated(x, rois, 4, 0.5, 0), x, grad)
    (ref,) = torch.autograd.grad(roi_align_rotated_ref(x, rois, (4, 4), 0.5, 0), x, grad)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)


def test_rois_outside_the_image(device):
    x = torch.randn(1, 2, 10, 10, dtype=torch.float64, device=device)
    far = torch.tensor([[0, -50.0, -50.0, 8, 8, 30], [0, 70.0, 5.0, 6, 4, -45]], dtype=torch.float64, device=device)
    assert forward(x, far).abs().max() == 0
    partly = torch.tensor([[0, -1.0, 4.0, 8, 6, 10], [0, 10.5, 10.0, 5, 9, 100]], dtype=torch.float64, device=device)
    out = forward(x, partly, (3, 3), 1.0, 2)
    torch.testing.assert_close(out, roi_align_rotated_ref(x, partly, (3, 3), 1.0, 2))
    assert out.abs().max() > 0


def test_zero_size_rois(device):
    x = torch.randn(1, 2, 8, 8, dtype=torch.float64, device=device, requires_grad=True)
    rois = torch.tensor([[0, 4.0, 4.0, 0, 0, 0], [0, 4.0, 4.0, 0, 3, 20], [0, 4.0, 4.0, 3, 0, 0]], device=device)
    rois = rois.to(torch.float64)
    out = roi_align_rotated(x, rois, (2, 2), 1.0, 0)
    assert out.shape == (3, 2, 2, 2) and out.abs().max() == 0
    out.sum().backward()
    assert x.grad.abs().max() == 0
    # With a fixed sampling ratio, a zero-size roi samples its centre point.
    fixed = forward(x.detach(), rois[:1], (2, 2), 1.0, 2)
    torch.testing.assert_close(fixed, roi_align_rotated_ref(x.detach(), rois[:1], (2, 2), 1.0, 2))


def test_angles_beyond_180(device):
    x = torch.randn(1, 3, 20, 20, dtype=torch.float64, device=device)
    rois = torch.tensor([[0, 10.0, 9.0, 8, 5, 30]], dtype=torch.float64, device=device)
    base = forward(x, rois)
    for turn in (360.0, -360.0, 720.0):
        shifted = rois.clone()
        shifted[:, 5] += turn
        torch.testing.assert_close(forward(x, shifted), base, rtol=1e-9, atol=1e-9)
    wide = rois.clone()
    wide[:, 5] = 250.0
    torch.testing.assert_close(forward(x, wide), roi_align_rotated_ref(x, wide, (7, 7), 1.0, 0))


def test_empty_rois(device):
    x = torch.randn(2, 3, 8, 8, device=device, requires_grad=True)
    rois = torch.zeros(0, 6, device=device)
    out = roi_align_rotated(x, rois, (7, 7), 1.0, 0)
    assert out.shape == (0, 3, 7, 7)
    out.sum().backward()
    assert x.grad.shape == x.shape and x.grad.abs().max() == 0


def test_empty_feature_map(device):
    x = torch.randn(1, 3, 0, 5, device=device)
    rois = torch.tensor([[0, 2.0, 2.0, 3, 3, 0]], device=device)
    assert forward(x, rois).abs().max() == 0


def test_non_contiguous_inputs(device):
    x = torch.randn(2, 12, 20, 3, dtype=torch.float64, device=device).permute(0, 3, 1, 2)
    rois = random_rois(8, 2, 12, 20).to(device)
    wide = torch.cat([rois, torch.zeros_like(rois)], dim=1)[:, :6]
    strided = torch.zeros(8, 12, dtype=torch.float64, device=device)[:, ::2]
    strided.copy_(rois)
    assert not x.is_contiguous() and not strided.is_contiguous()
    expected = forward(x.contiguous(), rois)
    torch.testing.assert_close(forward(x, strided), expected)
    torch.testing.assert_close(forward(x, wide), expected)
    grad = torch.randn_like(expected).transpose(2, 3).contiguous().transpose(2, 3)
    args = (1.0, 7, 7, 2, 3, 12, 20, 0)
    torch.testing.assert_close(
        ops().roi_align_rotated_backward(grad, strided, *args),
        ops().roi_align_rotated_backward(grad.contiguous(), rois, *args),
    )


def test_module_half_input_is_pooled_in_float32(device):
    x = torch.randn(1, 2, 16, 16, device=device)
    rois = random_rois(4, 1, 16, 16, dtype=torch.float32).to(device)
    m = ROIAlignRotated(4, 1.0, 0)
    out = m(x.half(), rois.half())
    assert out.dtype == torch.float16
    torch.testing.assert_close(out.float(), m(x.half().float(), rois.half().float()), rtol=1e-3, atol=1e-3)
    # float32 rois with a float64 map are converted rather than rejected.
    assert m(x.double(), rois).dtype == torch.float64


BAD_FORWARD = [
    ("input", lambda x, r: (x[0], r), ValueError, "'input' must be a 4-D"),
    ("input", lambda x, r: (x.int(), r.int()), TypeError, "'input' must be a float32"),  # CUDA also lists half types
    ("rois", lambda x, r: (x, r[:, :5]), ValueError, "'rois' must have shape"),
    ("rois", lambda x, r: (x, r[0]), ValueError, "'rois' must be a 2-D"),
    ("rois", lambda x, r: (x, r.double()), TypeError, "'rois' must have the same dtype"),
]


@pytest.mark.parametrize("arg,make,exc,msg", BAD_FORWARD)
def test_bad_arguments(device, arg, make, exc, msg):
    x = torch.randn(2, 3, 8, 8, device=device)
    rois = torch.tensor([[0, 4.0, 4.0, 3, 3, 0]], device=device)
    with pytest.raises(exc, match=msg):
        forward(*make(x, rois))


@pytest.mark.parametrize(
    "column,value,msg",
    [
        (0, -1.0, "batch indices"),
        (0, 2.0, "batch indices"),
        (0, 0.5, "batch indices"),
        (0, float("nan"), "finite"),
        (1, float("inf"), "finite"),
        (5, float("nan"), "finite"),
        (3, -1.0, "non-negative widths"),
        (4, -0.5, "non-negative widths"),
    ],
)
def test_bad_roi_values(device, column, value, msg):
    x = torch.randn(2, 3, 8, 8, device=device)
    rois = torch.tensor([[0, 4.0, 4.0, 3, 3, 0], [1, 2.0, 2.0, 1, 1, 0]], device=device)
    rois[1, column] = value
    with pytest.raises(ValueError, match=msg):
        forward(x, rois)
    grad = torch.zeros(2, 3, 7, 7, device=device)
    with pytest.raises(ValueError, match=msg):
        ops().roi_align_rotated_backward(grad, rois, 1.0, 7, 7, 2, 3, 8, 8, 0)


@pytest.mark.parametrize(
    "kwargs,msg",
    [
        (dict(scale=0.0), "'spatial_scale' must be a positive"),
        (dict(scale=float("nan")), "'spatial_scale' must be a positive"),
        (dict(out=(0, 7)), "'pooled_height' must be positive"),
        (dict(out=(7, -1)), "'pooled_width' must be positive"),
    ],
)
def test_bad_scalars(device, kwargs, msg):
    x = torch.randn(1, 3, 8, 8, device=device)
    rois = torch.tensor([[0, 4.0, 4.0, 3, 3, 0]], device=device)
    with pytest.raises(ValueError, match=msg):
        forward(x, rois, **kwargs)


@pytest.mark.parametrize("ratio", [257, 10**6, 2**40])
def test_huge_sampling_ratio_is_rejected(device, ratio):
    # Issue 15: such a ratio used to run for hours (ratio^2 samples per bin).
    x = torch.randn(1, 3, 8, 8, device=device)
    rois = torch.tensor([[0, 4.0, 4.0, 3, 3, 30]], device=device)
    with pytest.raises(ValueError, match="'sampling_ratio' must be at most 256"):
        forward(x, rois, ratio=ratio)
    with pytest.raises(ValueError, match="'sampling_ratio' must be at most 256"):
        ops().roi_align_rotated_backward(torch.zeros(1, 3, 7, 7, device=device), rois, 1.0, 7, 7, 1, 3, 8, 8, ratio)
    with pytest.raises(ValueError, match="'sampling_ratio'"):
        ROIAlignRotated((7, 7), 1.0, ratio)(x, rois)


def test_sampling_ratio_at_the_cap_matches_reference(device):
    x = torch.randn(1, 2, 9, 11, dtype=torch.float64, device=device)
    rois = random_rois(2, 1, 9, 11, seed=5).to(device)
    expected = roi_align_rotated_ref(x.cpu(), rois.cpu(), (2, 2), 1.0, 256)
    torch.testing.assert_close(forward(x, rois, (2, 2), 1.0, 256).cpu(), expected)


@pytest.mark.parametrize("size", [1e9, 3e38])
def test_huge_roi_under_adaptive_sampling_is_capped(device, size):
    # Issue 15: adaptive sampling gave ceil(size / 7) samples per bin side. The count is
    # capped at 256 per side, so the call finishes at once and equals sampling_ratio=256.
    x = torch.randn(1, 2, 16, 16, device=device)
    rois = torch.tensor([[0, 8.0, 8.0, size, size, 30.0], [0, 8.0, 8.0, size, 4.0, 0.0]], device=device)
    out = forward(x, rois, (7, 7), 1.0, 0)
    torch.testing.assert_close(out[:1], forward(x, rois[:1], (7, 7), 1.0, 256))
    assert torch.isfinite(out).all()
    grad = ops().roi_align_rotated_backward(torch.ones_like(out), rois, 1.0, 7, 7, 1, 2, 16, 16, 0)
    assert torch.isfinite(grad).all()


def test_bad_backward_arguments(device):
    rois = torch.tensor([[0, 4.0, 4.0, 3, 3, 0]], device=device)
    grad = torch.zeros(1, 3, 7, 7, device=device)
    bwd = ops().roi_align_rotated_backward
    with pytest.raises(ValueError, match="'grad' must have shape"):
        bwd(grad, rois, 1.0, 7, 7, 1, 4, 8, 8, 0)
    with pytest.raises(ValueError, match="'grad' must have shape"):
        bwd(grad, rois, 1.0, 5, 7, 1, 3, 8, 8, 0)
    with pytest.raises(ValueError, match="'height' must be non-negative"):
        bwd(grad, rois, 1.0, 7, 7, 1, 3, -8, 8, 0)
    with pytest.raises(ValueError, match="'grad' must be a 4-D"):
        bwd(grad[0], rois, 1.0, 7, 7, 1, 3, 8, 8, 0)
    with pytest.raises(ValueError, match="batch indices"):
        bwd(grad, rois, 1.0, 7, 7, 0, 3, 8, 8, 0)
    with pytest.raises(TypeError, match="'rois' must have the same dtype"):
        bwd(grad, rois.double(), 1.0, 7, 7, 1, 3, 8, 8, 0)


def test_half_is_rejected_on_cpu():
    x = torch.randn(1, 3, 8, 8).half()
    rois = torch.tensor([[0, 4.0, 4.0, 3, 3, 0]]).half()
    with pytest.raises(TypeError, match="CUDA only"):
        forward(x, rois)


@pytest.mark.cuda
def test_mismatched_devices():
    x = torch.randn(1, 3, 8, 8, device="cuda")
    rois = torch.tensor([[0, 4.0, 4.0, 3, 3, 0]])
    with pytest.raises(ValueError, match="'rois' must be on the same device"):
        forward(x, rois)
    with pytest.raises(ValueError, match="'rois' must be on the same device"):
        forward(x.cpu(), rois.cuda())


@pytest.mark.cuda
@pytest.mark.parametrize("ratio", [0, 2])
def test_cpu_cuda_parity(ratio):
    x = torch.randn(2, 16, 50, 60)
    rois = random_rois(300, 2, 50, 60, scale=0.5, dtype=torch.float32)
    grad = torch.randn(300, 16, 7, 7)
    args = (0.5, 7, 7, 2, 16, 50, 60, ratio)
    out_cpu = forward(x, rois, (7, 7), 0.5, ratio)
    out_gpu = forward(x.cuda(), rois.cuda(), (7, 7), 0.5, ratio)
    torch.testing.assert_close(out_gpu.cpu(), out_cpu, rtol=1e-5, atol=1e-5)
    g_cpu = ops().roi_align_rotated_backward(grad, rois, *args)
    g_gpu = ops().roi_align_rotated_backward(grad.cuda(), rois.cuda(), *args)
    torch.testing.assert_close(g_gpu.cpu(), g_cpu, rtol=1e-4, atol=1e-4)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype,tol", [(torch.float16, 2e-2), (torch.bfloat16, 1e-1)])
def test_cuda_half_types(dtype, tol):
    x = torch.randn(2, 8, 30, 30, device="cuda")
    rois = random_rois(50, 2, 30, 30, dtype=torch.float32).cuda()
    grad = torch.randn(50, 8, 7, 7, device="cuda")
    args = (1.0, 7, 7, 2, 8, 30, 30, 0)
    out = forward(x.to(dtype), rois.to(dtype))
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), forward(x.to(dtype).float(), rois.to(dtype).float()), rtol=tol, atol=tol)
    g = ops().roi_align_rotated_backward(grad.to(dtype), rois.to(dtype), *args)
    assert g.dtype == dtype
    g_ref = ops().roi_align_rotated_backward(grad.to(dtype).float(), rois.to(dtype).float(), *args)
    torch.testing.assert_close(g.float(), g_ref, rtol=tol, atol=tol)


@pytest.mark.cuda
def test_cuda_module_under_autocast():
    x = torch.randn(1, 4, 16, 16, device="cuda")
    rois = random_rois(6, 1, 16, 16, dtype=torch.float32).cuda()
    conv = torch.nn.Conv2d(4, 4, 1).cuda()
    with torch.autocast("cuda"):
        feat = conv(x)
        out = ROIAlignRotated(4, 1.0, 0)(feat, rois)
    assert out.dtype == feat.dtype
    torch.testing.assert_close(out.float(), forward(feat.float(), rois, (4, 4)), rtol=1e-3, atol=1e-3)


def test_module_scripts_and_traces(device):
    x = torch.randn(1, 2, 12, 12, device=device)
    rois = random_rois(5, 1, 12, 12, dtype=torch.float32).to(device)
    m = ROIAlignRotated((3, 3), 0.5, 2)
    expected = m(x, rois)
    torch.testing.assert_close(torch.jit.script(m)(x, rois), expected)
    torch.testing.assert_close(torch.jit.trace(m, (x, rois))(x, rois), expected)
