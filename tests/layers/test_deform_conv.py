"""Deformable convolution (v1 and modulated v2): _C kernels, autograd functions, modules."""
import itertools

import pytest
import torch
import torch.nn.functional as F
import torchvision

from detectron2.layers import DeformConv, ModulatedDeformConv
from detectron2.layers.deform_conv import deform_conv, modulated_deform_conv
from detectron2.layers._ops import load_C


# ---------------------------------------------------------------------------------------
# An independent plain-PyTorch reference: per-corner bilinear gathers + einsum.
# ---------------------------------------------------------------------------------------
def reference_deform_conv(x, offset, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, dg=1, mask=None):
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
    n, c, h, w = x.shape
    cout, cg, kh, kw = weight.shape
    ho, wo = offset.shape[-2:]
    k = kh * kw
    off = offset.reshape(n, dg, k, 2, ho, wo)
    taps_i = torch.arange(k, device=x.device) // kw
    taps_j = torch.arange(k, device=x.device) % kw
    base_y = (torch.arange(ho, device=x.device) * sh - ph)[None, :, None] + (taps_i * dh)[:, None, None]
    base_x = (torch.arange(wo, device=x.device) * sw - pw)[None, None, :] + (taps_j * dw)[:, None, None]
    py = base_y.to(x.dtype) + off[:, :, :, 0]  # (n, dg, k, ho, wo)
    px = base_x.to(x.dtype) + off[:, :, :, 1]
    planes = x.reshape(n, dg, c // dg, h * w)
    y0, x0 = torch.floor(py), torch.floor(px)
    sampled = torch.zeros(n, dg, c // dg, k * ho * wo, dtype=x.dtype, device=x.device)
    for cy, cx in itertools.product((0, 1), (0, 1)):
        yc, xc = y0 + cy, x0 + cx
        wy = 1 - (py - yc).abs()
        wx = 1 - (px - xc).abs()
        valid = (yc >= 0) & (yc <= h - 1) & (xc >= 0) & (xc <= w - 1)
        index = (yc.clamp(0, h - 1) * w + xc.clamp(0, w - 1)).long().reshape(n, dg, 1, -1)
        values = torch.gather(planes, 3, index.expand(-1, -1, c // dg, -1))
        weight_c = (wy * wx * valid).reshape(n, dg, 1, -1)
        sampled = sampled + values * weight_c
    sampled = sampled.reshape(n, dg, c // dg, k, ho, wo)
    if mask is not None:
        sampled = sampled * mask.reshape(n, dg, 1, k, ho, wo)
    cols = sampled.reshape(n, groups, cg, k, ho, wo)
    wmat = weight.reshape(groups, cout // groups, cg, k)
    out = torch.einsum("ngckhw,gock->ngohw", cols, wmat).reshape(n, cout, ho, wo)
    if bias is not None:
        out = out + bias.reshape(1, -1, 1, 1)
    return out


def out_size(size, k, s, p, d):
    return (size + 2 * p - (d * (k - 1) + 1)) // s + 1


def make_inputs(device, dtype, n=2, c=4, h=7, w=8, cout=6, k=(3, 3), stride=1, padding=1, dilation=1, groups=1,
                dg=1, offset_scale=2.0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    ho = out_size(h, k[0], stride, padding, dilation)
    wo = out_size(w, k[1], stride, padding, dilation)
    kk = k[0] * k[1]

    def rand(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)

    x = rand(n, c, h, w)
    weight = rand(cout, c // groups, *k)
    offset = rand(n, 2 * dg * kk, ho, wo) * offset_scale
    mask = torch.rand(n, dg * kk, ho, wo, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)
    bias = rand(cout)
    return x, offset, mask, weight, bias


CONFIGS = [
    # (c, cout, kernel, stride, padding, dilation, groups, deformable groups)
    dict(c=4, cout=6, k=(3, 3), stride=1, padding=1, dilation=1, groups=1, dg=1),
    dict(c=4, cout=6, k=(3, 3), stride=2, padding=0, dilation=1, groups=2, dg=1),
    dict(c=6, cout=4, k=(3, 2), stride=1, padding=2, dilation=2, groups=1, dg=3),
    dict(c=8, cout=4, k=(1, 1), stride=2, padding=0, dilation=1, groups=4, dg=2),
    dict(c=4, cout=2, k=(2, 3), stride=3, padding=1, dilation=1, groups=2, dg=4),
]


def call_args(cfg):
    return cfg["stride"], cfg["padding"], cfg["dilation"], cfg["groups"], cfg["dg"]


# ---------------------------------------------------------------------------------------
# Forward correctness
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("cfg", CONFIGS)
def test_forward_matches_reference(device, cfg):
    x, offset, mask, weight, bias = make_inputs(device, torch.float64, **cfg)
    s, p, d, g, dg = call_args(cfg)
    out = deform_conv(x, offset, weight, s, p, d, g, dg)
    ref = reference_deform_conv(x, offset, weight, None, s, p, d, g, dg)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    out = modulated_deform_conv(x, offset, mask, weight, bias, s, p, d, g, dg)
    ref = reference_deform_conv(x, offset, weight, bias, s, p, d, g, dg, mask=mask)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_forward_matches_torchvision(device, cfg):
    x, offset, mask, weight, bias = make_inputs(device, torch.float32, **cfg)
    s, p, d, g, dg = call_args(cfg)
    tv = torchvision.ops.deform_conv2d
    expected = tv(x, offset, weight, None, (s, s), (p, p), (d, d))
    torch.testing.assert_close(deform_conv(x, offset, weight, s, p, d, g, dg), expected, rtol=1e-4, atol=1e-4)
    expected = tv(x, offset, weight, bias, (s, s), (p, p), (d, d), mask=mask)
    out = modulated_deform_conv(x, offset, mask, weight, bias, s, p, d, g, dg)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("groups", [1, 2])
def test_zero_offsets_equal_conv2d(device, groups):
    x, offset, mask, weight, bias = make_inputs(device, torch.float64, c=4, cout=6, stride=2, padding=1,
                                                dilation=2, groups=groups, dg=2)
    offset = torch.zeros_like(offset)
    expected = F.conv2d(x, weight, None, 2, 1, 2, groups)
    torch.testing.assert_close(deform_conv(x, offset, weight, 2, 1, 2, groups, 2), expected)
    ones = torch.ones_like(mask)
    out = modulated_deform_conv(x, offset, ones, weight, bias, 2, 1, 2, groups, 2)
    torch.testing.assert_close(out, F.conv2d(x, weight, bias, 2, 1, 2, groups))


def test_samples_outside_the_image_are_zero(device):
    x, offset, mask, weight, bias = make_inputs(device, torch.float64)
    far = torch.full_like(offset, 100.0)
    assert deform_conv(x, far, weight, 1, 1, 1, 1, 1).abs().max().item() == 0
    out = modulated_deform_conv(x, -far, mask, weight, bias, 1, 1, 1, 1, 1)
    torch.testing.assert_close(out, bias.reshape(1, -1, 1, 1).expand_as(out))


@pytest.mark.parametrize("im2col_step", [1, 2, 4, 64])
def test_im2col_step_does_not_change_the_result(device, im2col_step):
    x, offset, mask, weight, bias = make_inputs(device, torch.float64, n=4)
    out = deform_conv(x, offset, weight, 1, 1, 1, 1, 1, im2col_step)
    torch.testing.assert_close(out, reference_deform_conv(x, offset, weight, None, 1, 1, 1, 1, 1))


@pytest.mark.parametrize(
    "c, groups, dg, k", [(70, 1, 2, (3, 3)), (40, 2, 5, (5, 5)), (66, 2, 3, (1, 7)), (300, 2, 1, (3, 3))]
)
def test_many_channels_and_taps_match_reference(device, c, groups, dg, k):
    """Past the small cases: many channels (the CUDA im2col gives a thread up to 16 of them),
    deformable groups that split them unevenly, weight groups, and kernels of up to 25
    taps. Forward and all gradients against the plain-PyTorch reference, from NCHW and
    from NHWC (channels-last) inputs; the GEMM writes a channels-last output in place."""
    pad = max(k) // 2
    x, offset, mask, weight, bias = make_inputs(device, torch.float64, n=3, c=c, cout=4, h=6, w=7, k=k,
                                                padding=pad, groups=groups, dg=dg)
    grad = torch.randn(3, 4, *offset.shape[-2:], dtype=torch.float64, device=device)

    def run(fn, x):
        leaves = [t.detach().clone().requires_grad_() for t in (x, offset, mask, weight, bias)]
        out = fn(*leaves)
        out.backward(grad)
        return [out.detach()] + [t.grad for t in leaves]

    ref = run(lambda x, o, m, w, b: reference_deform_conv(x, o, w, b, 1, pad, 1, groups, dg, mask=m), x)
    ours = lambda x, o, m, w, b: modulated_deform_conv(x, o, m, w, b, 1, pad, 1, groups, dg)  # noqa: E731
    nhwc = x.contiguous(memory_format=torch.channels_last)
    for inp in (x, nhwc):
        results = run(ours, inp)
        # The output keeps the input's memory format, as torch's convolutions do.
        assert results[0].is_contiguous(memory_format=torch.channels_last if inp is nhwc else torch.contiguous_format)
        for a, b in zip(results, ref):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    v1_ref = reference_deform_conv(x, offset, weight, None, 1, pad, 1, groups, dg)
    for inp in (x, nhwc):
        torch.testing.assert_close(deform_conv(inp, offset, weight, 1, pad, 1, groups, dg), v1_ref)


def test_non_contiguous_inputs(device):
    x, offset, mask, weight, bias = make_inputs(device, torch.float64, h=8, w=8)
    expected_v1 = deform_conv(x, offset, weight, 1, 1, 1, 1, 1)
    expected_v2 = modulated_deform_conv(x, offset, mask, weight, bias, 1, 1, 1, 1, 1)

    def strided(t):  # same values, non-contiguous memory
        out = t.transpose(-1, -2).contiguous().transpose(-1, -2)
        assert not out.is_contiguous()
        return out

    x_nc, off_nc, mask_nc, w_nc = strided(x), strided(offset), strided(mask), strided(weight)
    torch.testing.assert_close(deform_conv(x_nc, off_nc, w_nc, 1, 1, 1, 1, 1), expected_v1)
    out = modulated_deform_conv(x_nc, off_nc, mask_nc, w_nc, bias[::1], 1, 1, 1, 1, 1)
    torch.testing.assert_close(out, expected_v2)
    # Gradients of non-contiguous leaves also match.
    grad = torch.randn_like(expected_v2)
    leaves = [t.clone().requires_grad_() for t in (x, offset, mask, weight)]
    modulated_deform_conv(*leaves, bias, 1, 1, 1, 1, 1).backward(grad)
    leaves_nc = [strided(t.detach()).requires_grad_() for t in (x, offset, mask, weight)]
    modulated_deform_conv(*leaves_nc, bias, 1, 1, 1, 1, 1).backward(strided(grad))
    for a, b in zip(leaves, leaves_nc):
        torch.testing.assert_close(a.grad, b.grad)


# ---------------------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------------------
# The CUDA backward accumulates with atomicAdd, whose order varies between runs: two
# backward passes may differ in the last bits even in float64.
NONDET_TOL = 1e-10

@pytest.mark.parametrize("cfg", CONFIGS[:3])
def test_gradcheck_deform_conv(device, cfg):
    x, offset, _, weight, _ = make_inputs(device, torch.float64, n=2, h=5, w=6, **cfg)
    s, p, d, g, dg = call_args(cfg)
    inputs = [t.requires_grad_() for t in (x, offset, weight)]
    # fast_mode checks random projections of the Jacobian (the full one is slow on CPU).
    fn = lambda a, b, c: deform_conv(a, b, c, s, p, d, g, dg)  # noqa: E731
    assert torch.autograd.gradcheck(fn, inputs, fast_mode=True, nondet_tol=NONDET_TOL)


@pytest.mark.parametrize("cfg", CONFIGS[:3])
def test_gradcheck_modulated_deform_conv(device, cfg):
    x, offset, mask, weight, bias = make_inputs(device, torch.float64, n=2, h=5, w=6, **cfg)
    s, p, d, g, dg = call_args(cfg)
    inputs = [t.requires_grad_() for t in (x, offset, mask, weight, bias)]
    fn = lambda a, b, m, c, e: modulated_deform_conv(a, b, m, c, e, s, p, d, g, dg)  # noqa: E731
    assert torch.autograd.gradcheck(fn, inputs, fast_mode=True, nondet_tol=NONDET_TOL)


def test_gradcheck_full_jacobian_small(device):
    x, offset, mask, weight, bias = make_inputs(device, torch.float64, n=2, c=2, cout=2, h=3, w=4, k=(2, 2),
                                                padding=1, dg=2)
    inputs = [t.requires_grad_() for t in (x, offset, mask, weight, bias)]
    fn = lambda a, b, m, c, e: modulated_deform_conv(a, b, m, c, e, 1, 1, 1, 1, 2)  # noqa: E731
    assert torch.autograd.gradcheck(fn, inputs, nondet_tol=NONDET_TOL)
    assert torch.autograd.gradcheck(lambda a, b, c: deform_conv(a, b, c, 1, 1, 1, 1, 2), inputs[:2] + inputs[3:4],
                                     nondet_tol=NONDET_TOL)


def test_gradients_match_reference(device):
    cfg = CONFIGS[2]
    x, offset, mask, weight, bias = make_inputs(device, torch.float64, n=3, **cfg)
    s, p, d, g, dg = call_args(cfg)
    ours = [t.clone().requires_grad_() for t in (x, offset, mask, weight, bias)]
    theirs = [t.clone().requires_grad_() for t in (x, offset, mask, weight, bias)]
    out = modulated_deform_conv(*ours[:2], ours[2], ours[3], ours[4], s, p, d, g, dg)
    ref = reference_deform_conv(theirs[0], theirs[1], theirs[3], theirs[4], s, p, d, g, dg, mask=theirs[2])
    grad = torch.randn_like(out)
    out.backward(grad)
    ref.backward(grad)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-9)


def test_only_requested_gradients(device):
    x, offset, _, weight, _ = make_inputs(device, torch.float64)
    weight.requires_grad_()
    deform_conv(x, offset, weight, 1, 1, 1, 1, 1).sum().backward()
    assert weight.grad is not None and x.grad is None and offset.grad is None


def test_modulated_without_bias(device):
    x, offset, mask, weight, _ = make_inputs(device, torch.float64, n=1, h=5, w=5)
    inputs = [t.requires_grad_() for t in (x, offset, mask, weight)]
    fn = lambda a, b, m, c: modulated_deform_conv(a, b, m, c, None, 1, 1, 1, 1, 1)  # noqa: E731
    assert torch.autograd.gradcheck(fn, inputs, fast_mode=True, nondet_tol=NONDET_TOL)


@pytest.mark.parametrize("modulated", [False, True])
def test_calls_without_gradients_skip_autograd_and_agree(device, modulated):
    # Without gradients to record the functions call the kernels directly; with them they go
    # through the autograd Function. Both must give the same output, and only the second a graph.
    x, offset, mask, weight, bias = make_inputs(device, torch.float32, n=3, c=6, h=9, w=7, cout=6, groups=2, dg=3)
    if modulated:
        run = lambda a, o, wt: modulated_deform_conv(  # noqa: E731
            a, o, mask, wt, bias, stride=1, padding=1, dilation=1, groups=2, deformable_groups=3
        )
    else:
        run = lambda a, o, wt: deform_conv(  # noqa: E731
            a, o, wt, stride=1, padding=1, dilation=1, groups=2, deformable_groups=3, im2col_step=3
        )
    direct = run(x, offset, weight)
    assert direct.grad_fn is None and not direct.requires_grad
    leaves = [t.clone().requires_grad_() for t in (x, offset, weight)]
    recorded = run(*leaves)
    assert recorded.grad_fn is not None
    torch.testing.assert_close(recorded.detach(), direct, rtol=0, atol=0)
    with torch.no_grad():
        untracked = run(*leaves)
    assert untracked.grad_fn is None
    torch.testing.assert_close(untracked, direct, rtol=0, atol=0)
    expected = reference_deform_conv(x.double(), offset.double(), weight.double(), bias.double() if modulated else None,
                                     1, 1, 1, 2, 3, mask=mask.double() if modulated else None)
    torch.testing.assert_close(direct.double(), expected, rtol=1e-4, atol=1e-4)
    for bad_weight in (weight[0], weight.flatten(1)):
        with pytest.raises(ValueError, match="'weight'"):
            run(x, offset, bad_weight)
    with pytest.raises(ValueError, match="'input'"):
        run(x[0], offset, weight)
    # Only a parameter (the bias) asking for its gradient is enough to record the graph.
    if modulated:
        bias_leaf = bias.clone().requires_grad_()
        out = modulated_deform_conv(x, offset, mask, weight, bias_leaf, 1, 1, 1, 2, 3)
        out.sum().backward()
        torch.testing.assert_close(bias_leaf.grad, torch.full_like(bias, out.shape[0] * out.shape[2] * out.shape[3]))


# ---------------------------------------------------------------------------------------
# The _C module functions (upstream's calling convention)
# ---------------------------------------------------------------------------------------
def test_backward_filter_accumulates_with_scale(device):
    C = load_C()
    x, offset, _, weight, _ = make_inputs(device, torch.float64)
    grad_out = torch.randn(2, 6, 7, 8, dtype=torch.float64, device=device)
    empty = x.new_empty(0)
    args = (3, 3, 1, 1, 1, 1, 1, 1, 1, 1)
    once = torch.zeros_like(weight)
    C.deform_conv_backward_filter(x, offset, grad_out, once, empty, empty, *args, 1.0, 2)
    start = torch.ones_like(weight)
    C.deform_conv_backward_filter(x, offset, grad_out, start, empty, empty, *args, 0.5, 1)
    torch.testing.assert_close(start, 1 + 0.5 * once)


def test_module_functions_resize_outputs(device):
    C = load_C()
    x, offset, mask, weight, bias = make_inputs(device, torch.float64)
    empty = x.new_empty(0)
    out = x.new_empty(3)  # wrong size: resized
    C.modulated_deform_conv_forward(x, weight, bias, empty, offset, mask, out, empty, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1,
                                    True)
    torch.testing.assert_close(out, reference_deform_conv(x, offset, weight, bias, 1, 1, 1, 1, 1, mask=mask))
    out_v1 = x.new_empty(0)
    C.deform_conv_forward(x, weight, offset, out_v1, empty, empty, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2)
    torch.testing.assert_close(out_v1, reference_deform_conv(x, offset, weight, None, 1, 1, 1, 1, 1))


# ---------------------------------------------------------------------------------------
# Empty batches
# ---------------------------------------------------------------------------------------
def test_empty_batch_functions(device):
    x, offset, mask, weight, bias = make_inputs(device, torch.float64, n=0)
    leaves = [t.requires_grad_() for t in (x, offset, mask, weight, bias)]
    out = modulated_deform_conv(*leaves, 1, 1, 1, 1, 1)
    assert out.shape == (0, 6, 7, 8)
    out.sum().backward()
    assert leaves[0].grad.shape == x.shape and leaves[3].grad.abs().sum() == 0
    out = deform_conv(x, offset, weight, 1, 1, 1, 1, 1)
    assert out.shape == (0, 6, 7, 8)


def test_empty_batch_modules(device):
    v1 = DeformConv(4, 6, 3, padding=1).to(device)
    v2 = ModulatedDeformConv(4, 6, 3, stride=2, padding=1, activation=torch.relu).to(device)
    x = torch.zeros(0, 4, 9, 9, device=device)
    out = v1(x, torch.zeros(0, 18, 9, 9, device=device))
    assert out.shape == (0, 6, 9, 9)
    out = v2(x, torch.zeros(0, 18, 5, 5, device=device), torch.zeros(0, 9, 5, 5, device=device))
    assert out.shape == (0, 6, 5, 5)
    out.sum().backward()
    assert v2.weight.grad is not None


# ---------------------------------------------------------------------------------------
# Modules
# ---------------------------------------------------------------------------------------
def test_module_parameters_and_repr():
    v1 = DeformConv(8, 16, 3, padding=1, groups=2, deformable_groups=2)
    assert list(v1.state_dict().keys()) == ["weight"]
    assert v1.weight.shape == (16, 4, 3, 3) and v1.bias is None
    v2 = ModulatedDeformConv(8, 16, (3, 1), padding=(1, 0))
    assert list(v2.state_dict().keys()) == ["weight", "bias"]
    assert v2.bias.abs().sum() == 0 and v2.weight.std() > 0
    text = repr(v2)
    for part in ("in_channels=8", "out_channels=16", "kernel_size=(3, 1)", "padding=(1, 0)",
                 "deformable_groups=1", "bias=True"):
        assert part in text
    assert "bias=False" in repr(v1)
    assert list(ModulatedDeformConv(8, 16, 3, bias=False).state_dict().keys()) == ["weight"]


def test_module_bad_construction():
    with pytest.raises(ValueError, match="bias"):
        DeformConv(4, 4, 3, bias=True)
    with pytest.raises(ValueError, match="groups"):
        ModulatedDeformConv(6, 4, 3, groups=4)


def test_modules_match_functions(device):
    torch.manual_seed(0)
    norm = torch.nn.BatchNorm2d(6).to(device).eval()
    v1 = DeformConv(4, 6, 3, padding=1, deformable_groups=2, norm=norm, activation=torch.relu).to(device).double()
    v2 = ModulatedDeformConv(4, 6, 3, padding=1, deformable_groups=2).to(device).double()
    x, offset, mask, _, _ = make_inputs(device, torch.float64, dg=2)
    expected = torch.relu(norm(deform_conv(x, offset, v1.weight, 1, 1, 1, 1, 2)))
    torch.testing.assert_close(v1(x, offset), expected)
    expected = modulated_deform_conv(x, offset, mask, v2.weight, v2.bias, 1, 1, 1, 1, 2)
    torch.testing.assert_close(v2(x, offset, mask), expected)


# ---------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------
def _v2_call(x, offset, mask, weight, bias, out=None, k=(3, 3), stride=1, pad=1, dil=1, groups=1, dg=1,
             with_bias=True):
    empty = x.new_empty(0)
    out = x.new_empty(0) if out is None else out
    load_C().modulated_deform_conv_forward(x, weight, bias, empty, offset, mask, out, empty, k[0], k[1], stride,
                                           stride, pad, pad, dil, dil, groups, dg, with_bias)
    return out


def _v1_call(x, offset, weight, step=1, groups=1, dg=1):
    empty = x.new_empty(0)
    out = x.new_empty(0)
    load_C().deform_conv_forward(x, weight, offset, out, empty, empty, 3, 3, 1, 1, 1, 1, 1, 1, groups, dg, step)
    return out


def test_bad_input_raises(device):
    x, offset, mask, weight, bias = make_inputs(device, torch.float32)
    cases = [
        (ValueError, "'input'", lambda: _v2_call(x[0], offset, mask, weight, bias)),
        (TypeError, "'input'", lambda: _v2_call(x.int(), offset.int(), mask.int(), weight.int(), bias.int())),
        (ValueError, "'offset'", lambda: _v2_call(x, offset[:, :4], mask, weight, bias)),
        (ValueError, "'offset'", lambda: _v2_call(x, offset[:1], mask, weight, bias)),
        (ValueError, "'offset'", lambda: _v2_call(x, offset[..., :3], mask, weight, bias)),
        (TypeError, "'offset'", lambda: _v2_call(x, offset.double(), mask, weight, bias)),
        (ValueError, "'mask'", lambda: _v2_call(x, offset, mask[:, :3], weight, bias)),
        (ValueError, "'mask'", lambda: _v2_call(x, offset, mask[0], weight, bias)),
        (TypeError, "'mask'", lambda: _v2_call(x, offset, mask.double(), weight, bias)),
        (ValueError, "'weight'", lambda: _v2_call(x, offset, mask, weight[:, :2], bias)),
        (ValueError, "'weight'", lambda: _v2_call(x, offset, mask, weight[0], bias)),
        (TypeError, "'weight'", lambda: _v2_call(x, offset, mask, weight.double(), bias)),
        (ValueError, "'bias'", lambda: _v2_call(x, offset, mask, weight, bias[:2])),
        (TypeError, "'bias'", lambda: _v2_call(x, offset, mask, weight, bias.double())),
        (ValueError, "'output'", lambda: _v2_call(x, offset, mask, weight, bias, out=x.new_empty(4, 4).t())),
        (TypeError, "'output'", lambda: _v2_call(x, offset, mask, weight, bias, out=x.new_empty(0).double())),
        (ValueError, "'group'", lambda: _v2_call(x, offset, mask, weight, bias, groups=3)),
        (ValueError, "'deformable_group'", lambda: _v2_call(x, offset, mask, weight, bias, dg=3)),
        (ValueError, "'deformable_group'", lambda: _v2_call(x, offset, mask, weight, bias, dg=0)),
        (ValueError, "'stride_h'", lambda: _v2_call(x, offset, mask, weight, bias, stride=0)),
        (ValueError, "'pad_h'", lambda: _v2_call(x, offset, mask, weight, bias, pad=-1)),
        (ValueError, "'dilation_h'", lambda: _v2_call(x, offset, mask, weight, bias, dil=0)),
        (ValueError, "'kernel_h'", lambda: _v2_call(x, offset, mask, weight, bias, k=(0, 3))),
        (ValueError, "output would be empty", lambda: _v2_call(x, offset, mask, weight, bias, pad=0, dil=5)),
        (ValueError, "'im2col_step'", lambda: _v1_call(x, offset, weight, step=0)),
        (ValueError, "'im2col_step'", lambda: _v1_call(torch.cat([x, x[:1]]), torch.cat([offset, offset[:1]]),
                                                       weight, step=2)),
        (ValueError, "'weight'", lambda: _v1_call(x, offset, weight[..., :2])),
    ]
    for error, message, fn in cases:
        with pytest.raises(error, match=message):
            fn()


def test_bad_gradient_buffers_raise(device):
    C = load_C()
    x, offset, mask, weight, bias = make_inputs(device, torch.float32)
    grad_out = torch.randn(2, 6, 7, 8, device=device)
    empty = x.new_empty(0)
    args = (3, 3, 1, 1, 1, 1, 1, 1, 1, 1)
    with pytest.raises(ValueError, match="'gradOutput'"):
        C.deform_conv_backward_input(x, offset, grad_out[:, :3], torch.empty_like(x), torch.empty_like(offset),
                                     weight, empty, *args, 1)
    with pytest.raises(TypeError, match="'gradInput'"):
        C.deform_conv_backward_input(x, offset, grad_out, torch.empty_like(x).double(), torch.empty_like(offset),
                                     weight, empty, *args, 1)
    with pytest.raises(ValueError, match="'gradWeight'"):
        C.deform_conv_backward_filter(x, offset, grad_out, torch.zeros(6, 4, 3, 2, device=device), empty, empty,
                                      *args, 1.0, 1)
    buffers = [torch.empty_like(t) for t in (x, weight, bias, offset, mask)]
    with pytest.raises(ValueError, match="'grad_output'"):
        C.modulated_deform_conv_backward(x, weight, bias, empty, offset, mask, empty, *buffers, grad_out[..., :2],
                                         3, 3, 1, 1, 1, 1, 1, 1, 1, 1, True)
    buffers[1] = torch.zeros(5, 4, 3, 3, device=device)
    with pytest.raises(ValueError, match="'grad_weight'"):
        C.modulated_deform_conv_backward(x, weight, bias, empty, offset, mask, empty, *buffers, grad_out,
                                         3, 3, 1, 1, 1, 1, 1, 1, 1, 1, True)


def test_half_types_rejected_on_cpu():
    x, offset, mask, weight, bias = make_inputs("cpu", torch.float32)
    with pytest.raises(TypeError, match="CUDA only"):
        deform_conv(x.half(), offset.half(), weight.half(), 1, 1, 1, 1, 1)
    with pytest.raises(ValueError, match="4-D"):
        deform_conv(x[0], offset, weight, 1, 1, 1, 1, 1)


@pytest.mark.cuda
def test_mismatched_devices_raise():
    x, offset, mask, weight, bias = make_inputs("cpu", torch.float32)
    with pytest.raises(ValueError, match="'offset'.*same device"):
        _v2_call(x.cuda(), offset, mask.cuda(), weight.cuda(), bias.cuda())
    with pytest.raises(ValueError, match="'weight'.*same device"):
        _v2_call(x.cuda(), offset.cuda(), mask.cuda(), weight, bias.cuda())
    with pytest.raises(ValueError, match="'mask'.*same device"):
        _v2_call(x.cuda(), offset.cuda(), mask, weight.cuda(), bias.cuda())
    with pytest.raises(ValueError, match="'output'.*same device"):
        _v2_call(x.cuda(), offset.cuda(), mask.cuda(), weight.cuda(), bias.cuda(), out=torch.empty(0))


# ---------------------------------------------------------------------------------------
# CUDA: parity with the CPU kernels and half precision
# ---------------------------------------------------------------------------------------
@pytest.mark.cuda
@pytest.mark.parametrize("cfg", CONFIGS)
def test_cuda_matches_cpu(cfg):
    x, offset, mask, weight, bias = make_inputs("cpu", torch.float64, n=3, h=9, w=10, **cfg)
    s, p, d, g, dg = call_args(cfg)
    grads = {}
    for dev in ("cpu", "cuda"):
        leaves = [t.detach().to(dev).requires_grad_() for t in (x, offset, mask, weight, bias)]
        out = modulated_deform_conv(*leaves, s, p, d, g, dg)
        out.backward(torch.linspace(-1, 1, out.numel(), dtype=out.dtype, device=dev).reshape(out.shape))
        grads[dev] = [out.detach().cpu()] + [t.grad.cpu() for t in leaves]
    for a, b in zip(grads["cpu"], grads["cuda"]):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


@pytest.mark.cuda
def test_cuda_large_batch_uses_chunked_kernels():
    # Few output pixels and many channels: exercises the channel-chunked coordinate kernel.
    x, offset, mask, weight, bias = make_inputs("cpu", torch.float64, n=1, c=64, cout=8, h=4, w=4, dg=2)
    leaves_cpu = [t.clone().requires_grad_() for t in (x, offset, mask, weight, bias)]
    leaves_gpu = [t.cuda().requires_grad_() for t in (x, offset, mask, weight, bias)]
    for leaves in (leaves_cpu, leaves_gpu):
        modulated_deform_conv(*leaves, 1, 1, 1, 1, 2).square().sum().backward()
    for a, b in zip(leaves_cpu, leaves_gpu):
        torch.testing.assert_close(a.grad, b.grad.cpu(), rtol=1e-9, atol=1e-9)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16])
def test_cuda_nchw_output_tiles_cover_every_image_and_edge(dtype):
    # The GEMM's pixel-major rows reach the NCHW output through a tiled transpose: sizes that
    # are not multiples of its 32x32 tile, and more images than its grid's z dimension
    # (65535) holds in one pass (the whole batch is one im2col step here).
    cases = [dict(n=70001, c=2, cout=3, h=2, w=3, k=(1, 1), padding=0), dict(n=3, c=5, cout=37, h=11, w=6)]
    for case in cases:
        pad = case.pop("padding", 1)
        x, offset, mask, weight, bias = make_inputs("cpu", torch.float64, padding=pad, **case)
        expected = modulated_deform_conv(x, offset, mask, weight, bias, 1, pad, 1, 1, 1)
        step = case["n"]  # v1 in one im2col step as well
        expected_v1 = deform_conv(x, offset, weight, 1, pad, 1, 1, 1, step)
        on_gpu = [t.to("cuda", dtype) for t in (x, offset, mask, weight, bias)]
        got = modulated_deform_conv(*on_gpu, 1, pad, 1, 1, 1)
        got_v1 = deform_conv(on_gpu[0], on_gpu[1], on_gpu[3], 1, pad, 1, 1, 1, step)
        assert got.is_contiguous() and got.dtype == dtype
        tol = {torch.float64: 1e-9, torch.float32: 1e-4, torch.float16: 5e-2}[dtype]
        torch.testing.assert_close(got.double().cpu(), expected, rtol=tol, atol=tol)
        torch.testing.assert_close(got_v1.double().cpu(), expected_v1, rtol=tol, atol=tol)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_half_types(dtype):
    x, offset, mask, weight, bias = make_inputs("cuda", torch.float32, n=2, c=8, cout=8, h=12, w=12, dg=2)
    # The float32 reference sees the same (rounded) values: only the arithmetic differs.
    half_leaves = [t.to(dtype).requires_grad_() for t in (x, offset, mask, weight, bias)]
    ref_leaves = [t.detach().float().requires_grad_() for t in half_leaves]
    ref = modulated_deform_conv(*ref_leaves, 1, 1, 1, 1, 2)
    out = modulated_deform_conv(*half_leaves, 1, 1, 1, 1, 2)
    assert out.dtype == dtype
    tol = 2e-2 if dtype == torch.float16 else 1e-1
    torch.testing.assert_close(out.float(), ref, rtol=tol, atol=tol * ref.abs().max().item())
    grad = torch.randn_like(ref).to(dtype).float()
    ref.backward(grad)
    out.backward(grad.to(dtype))
    for a, b in zip(ref_leaves, half_leaves):
        assert b.grad.dtype == dtype
        scale = a.grad.abs().max().item()
        torch.testing.assert_close(b.grad.float(), a.grad, rtol=tol, atol=tol * scale * 2)


@pytest.mark.cuda
def test_cuda_on_second_device_or_current():
    # The kernels run on the tensors' device even when another device is current.
    dev = torch.device("cuda", torch.cuda.device_count() - 1)
    x, offset, mask, weight, bias = make_inputs(dev, torch.float64)
    with torch.cuda.device(0):
        out = modulated_deform_conv(x, offset, mask, weight, bias, 1, 1, 1, 1, 1)
    torch.testing.assert_close(out, reference_deform_conv(x, offset, weight, bias, 1, 1, 1, 1, 1, mask=mask))


@pytest.mark.parametrize("modulated", [False, True])
def test_modules_under_autocast_run_in_the_weights_dtype(device, modulated):
    # Under autocast the offsets come out of a half-precision conv: the module must accept
    # them beside its float32 weights and compute as float32 on the upcast operands.
    half = torch.bfloat16 if device.type == "cpu" else torch.float16
    torch.manual_seed(0)
    cls = ModulatedDeformConv if modulated else DeformConv
    layer = cls(4, 6, 3, padding=1).to(device)
    x = torch.randn(2, 4, 7, 8, device=device).to(half)
    offset = (torch.randn(2, 18, 7, 8, device=device) * 0.5).to(half)
    operands = [x, offset] + ([torch.rand(2, 9, 7, 8, device=device).to(half)] if modulated else [])
    with torch.autocast(device.type, dtype=half):
        out = layer(*operands)
    expected = layer(*(t.float() for t in operands))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("batch, limit, channels, expected", [
    (6, 64, 4, 6),  # the whole batch fits in one step
    (6, 4, 4, 3),  # the largest divisor of the batch not above the limit
    (7, 4, 4, 1),  # a prime batch above the limit: one image a step
    (4, 64, 4096, 2),  # 2 images of 4096 channels x 9 taps x 1600 pixels fit the 2**27 budget, 4 do not
])
def test_layer_functions_pick_the_im2col_step(batch, limit, channels, expected):
    x = torch.zeros(batch, channels, 40, 40)
    offset = torch.zeros(batch, 18, 40, 40)
    weight = torch.zeros(1, channels, 3, 3)
    out, step = load_C().deform_conv_layer(x, offset, weight, 1, 1, 1, 1, 1, 1, 1, 1, limit)
    assert step == expected and out.shape == (batch, 1, 40, 40)
    with pytest.raises(ValueError, match="'im2col_step'"):
        load_C().deform_conv_layer(x, offset, weight, 1, 1, 1, 1, 1, 1, 1, 1, 0)


def test_layer_functions_check_their_arguments():
    x, offset, mask, weight, bias = make_inputs("cpu", torch.float32)
    C = load_C()
    with pytest.raises(ValueError, match="'offset' must have shape"):
        C.deform_conv_layer(x, offset[:, :4], weight, 1, 1, 1, 1, 1, 1, 1, 1, 64)
    with pytest.raises(ValueError, match="'mask' must be a 4-D"):
        C.modulated_deform_conv_layer(x, offset, mask[0], weight, bias, 1, 1, 1, 1, 1, 1, 1, 1)
    with pytest.raises(ValueError, match="'bias'"):
        C.modulated_deform_conv_layer(x, offset, mask, weight, bias[:2], 1, 1, 1, 1, 1, 1, 1, 1)
    with pytest.raises(TypeError, match="'offset' must have the same dtype"):
        C.deform_conv_layer(x, offset.double(), weight, 1, 1, 1, 1, 1, 1, 1, 1, 64)
    with pytest.raises(TypeError):
        C.deform_conv_layer(None, offset, weight, 1, 1, 1, 1, 1, 1, 1, 1, 64)
    # No bias and a None bias are the same call.
    torch.testing.assert_close(C.modulated_deform_conv_layer(x, offset, mask, weight, None, 1, 1, 1, 1, 1, 1, 1, 1),
                               modulated_deform_conv(x, offset, mask, weight, None, 1, 1, 1, 1, 1), rtol=0, atol=0)


@pytest.mark.cuda
def test_cuda_im2col_with_64bit_indices_matches_channel_halves():
    # One image whose column matrix has more than 2**31 elements: im2col indexes in int64
    # there (int32 below). Convolution is linear in the input channels, so the sum of the
    # two channel halves, each computed with 32-bit indices, is an independent reference.
    if torch.cuda.get_device_properties(0).total_memory < 40 * 2**30:
        pytest.skip("needs a GPU with 40 GiB (a 8.6 GB column matrix)")
    gen = torch.Generator(device="cuda").manual_seed(0)
    c, size = 512, 683  # columns: 512 * 9 * 683 * 683 = 2,149,559,808 elements
    x = torch.randn(1, c, size, size, device="cuda", generator=gen)
    offset = torch.randn(1, 18, size, size, device="cuda", generator=gen) * 2
    weight = torch.randn(4, c, 3, 3, device="cuda", generator=gen) * 0.02
    assert c * 9 * size * size > 2**31
    full = deform_conv(x, offset, weight, 1, 1, 1, 1, 1)
    half = c // 2
    parts = [deform_conv(x[:, s:s + half].contiguous(), offset, weight[:, s:s + half].contiguous(), 1, 1, 1, 1, 1)
             for s in (0, half)]
    torch.testing.assert_close(full, parts[0] + parts[1], rtol=1e-4, atol=1e-4)
