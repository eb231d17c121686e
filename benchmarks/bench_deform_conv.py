"""Deformable convolution: detectron2 vs torchvision.ops.deform_conv2d (and a plain-PyTorch
reference at small sizes), forward and forward+backward, with and without the mask.

    python benchmarks/bench_deform_conv.py [--device cuda] [--quick] [--tf32] [--channels-last]

--tf32 sets torch.backends.cuda.matmul.allow_tf32 for every implementation: the GEMM that
dominates the forward then runs on tensor cores (the user's opt-in; off by default in
PyTorch, and off in the default run here, so outputs stay exact float32 GEMMs).
--channels-last gives every implementation NHWC-strided inputs, as a channels-last network
does (ours then also returns a channels-last output, as torch's convolutions do).

Ratios are ours / peer: below 1.0 means detectron2 is faster.
"""
import itertools
import os
import sys

import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from common import describe_device, parse_args, print_table, time_fn  # noqa: E402

from detectron2.layers.deform_conv import deform_conv, modulated_deform_conv  # noqa: E402


def plain_reference(x, offset, weight, bias, mask):
    """Deformable 3x3 conv (stride 1, padding 1) in plain PyTorch: bilinear gathers + einsum."""
    n, c, h, w = x.shape
    ho, wo = offset.shape[-2:]
    k = weight.shape[2] * weight.shape[3]
    off = offset.reshape(n, 1, k, 2, ho, wo)
    taps = torch.arange(k, device=x.device)
    py = (torch.arange(ho, device=x.device) - 1)[None, :, None] + (taps // 3)[:, None, None] + off[:, :, :, 0]
    px = (torch.arange(wo, device=x.device) - 1)[None, None, :] + (taps % 3)[:, None, None] + off[:, :, :, 1]
    planes = x.reshape(n, 1, c, h * w)
    y0, x0 = torch.floor(py), torch.floor(px)
    cols = 0
    for cy, cx in itertools.product((0, 1), (0, 1)):
        yc, xc = y0 + cy, x0 + cx
        wgt = (1 - (py - yc).abs()) * (1 - (px - xc).abs()) * ((yc >= 0) & (yc < h) & (xc >= 0) & (xc < w))
        idx = (yc.clamp(0, h - 1) * w + xc.clamp(0, w - 1)).long().reshape(n, 1, 1, -1).expand(-1, -1, c, -1)
        cols = cols + torch.gather(planes, 3, idx) * wgt.reshape(n, 1, 1, -1)
    cols = cols.reshape(n, c, k, ho, wo)
    if mask is not None:
        cols = cols * mask.reshape(n, 1, k, ho, wo)
    out = torch.einsum("nckhw,ock->nohw", cols, weight.reshape(weight.shape[0], c, k))
    return out if bias is None else out + bias.reshape(1, -1, 1, 1)


def make_case(n, c, h, w, device, dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, h, w, generator=g).to(device, dtype)
    offset = (torch.randn(n, 18, h, w, generator=g) * 2).to(device, dtype)
    mask = torch.rand(n, 9, h, w, generator=g).to(device, dtype)
    weight = (torch.randn(c, c, 3, 3, generator=g) * 0.02).to(device, dtype)
    bias = torch.zeros(c).to(device, dtype)
    return x, offset, mask, weight, bias


def runners(x, offset, mask, weight, bias, with_mask):
    ours = (
        (lambda a, o, m, wt, b: modulated_deform_conv(a, o, m, wt, b, 1, 1, 1, 1, 1))
        if with_mask
        else (lambda a, o, m, wt, b: deform_conv(a, o, wt, 1, 1, 1, 1, 1))
    )

    def tv(a, o, m, wt, b):
        return torchvision.ops.deform_conv2d(a, o, wt, b if with_mask else None, padding=(1, 1),
                                             mask=m if with_mask else None)

    def ref(a, o, m, wt, b):
        return plain_reference(a, o, wt, b if with_mask else None, m if with_mask else None)

    return {"detectron2": ours, "torchvision": tv, "plain torch": ref}


def timed(fn, tensors, backward, device, iters):
    leaves = [t.detach().requires_grad_(backward) for t in tensors]

    def step():
        out = fn(*leaves)
        if backward:
            out.backward(torch.ones_like(out))
            for t in leaves:
                t.grad = None
        return out

    return time_fn(step, device, warmup=2, iters=iters)


def main() -> None:
    tf32 = "--tf32" in sys.argv
    if tf32:
        sys.argv.remove("--tf32")
        torch.backends.cuda.matmul.allow_tf32 = True
    channels_last = "--channels-last" in sys.argv
    if channels_last:
        sys.argv.remove("--channels-last")
    args = parse_args(__doc__.splitlines()[0])
    print(f"# deformable convolution 3x3 on {describe_device(args.device)}"
          f"{', TF32 GEMMs allowed' if tf32 else ''}{', channels-last inputs' if channels_last else ''}\n")
    if args.quick:
        sizes = [(1, 16, 16, 16)]
        ref_max = 16 * 16 * 16
    elif args.device == "cuda":
        # The sizes of issue 13 (upstream's forward: 0.41 ms and 1.02 ms on an H200) first,
        # then Mask R-CNN-like res4 / res5 maps of a ~800x1333 image, 256 channels.
        sizes = [(2, 256, 64, 64), (8, 512, 25, 34), (2, 256, 50, 84), (8, 256, 50, 84), (2, 256, 25, 42),
                 (8, 256, 25, 42), (2, 64, 32, 32)]
        ref_max = 64 * 32 * 32
    else:
        sizes = [(2, 64, 32, 32), (2, 256, 25, 42), (1, 256, 50, 84)]
        ref_max = 64 * 32 * 32
    rows = []
    for (n, c, h, w), with_mask, backward in itertools.product(sizes, (False, True), (False, True)):
        tensors = make_case(n, c, h, w, args.device)
        if channels_last:
            tensors = (tensors[0].contiguous(memory_format=torch.channels_last),) + tensors[1:]
        fns = runners(*tensors, with_mask)
        ms = {"detectron2": timed(fns["detectron2"], tensors, backward, args.device, args.iters),
              "torchvision": timed(fns["torchvision"], tensors, backward, args.device, args.iters)}
        ref_ms = timed(fns["plain torch"], tensors, backward, args.device, args.iters) if c * h * w <= ref_max else None
        rows.append([
            f"{n}x{c}x{h}x{w}", "v2 (mask)" if with_mask else "v1", "fwd+bwd" if backward else "fwd",
            ms["detectron2"], ms["torchvision"], ms["detectron2"] / ms["torchvision"],
            "-" if ref_ms is None else ref_ms, "-" if ref_ms is None else ms["detectron2"] / ref_ms,
        ])
    print_table(rows, ["N x C x H x W", "variant", "pass", "ours ms", "torchvision ms", "ours/tv",
                       "plain torch ms", "ours/plain"])


if __name__ == "__main__":
    main()
