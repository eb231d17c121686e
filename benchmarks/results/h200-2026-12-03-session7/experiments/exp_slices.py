"""EXPERIMENT (issue 13): deform_conv forward with the im2col pipelined over channel
slices, S slices (env D2_DEFORM_SLICES, read per call by the experiment build), GEMMs on
a high- or normal-priority side stream (D2_DEFORM_PRIORITY). Same process, interleaved
rounds; prints the best-of-rounds median per config."""
import os, sys, itertools, statistics
import torch, torchvision
sys.path.insert(0, "benchmarks")
from common import time_fn, warm_up_gpu
from bench_deform_conv import make_case
from detectron2.layers.deform_conv import deform_conv, modulated_deform_conv

def set_cfg(s, prio):
    os.environ["D2_DEFORM_SLICES"] = str(s)
    os.environ["D2_DEFORM_PRIORITY"] = str(prio)

sizes = [(2, 256, 64, 64), (8, 512, 25, 34), (2, 256, 50, 84), (8, 256, 50, 84), (8, 256, 25, 42), (2, 256, 25, 42)]
configs = [(1, 1), (2, 1), (3, 1), (4, 1), (6, 1), (8, 1), (4, 0), (8, 0)]
warm_up_gpu(2.0)
print("| size | variant | layout | tv ms | " + " | ".join(f"S{s}{'' if p else 'lo'}" for s, p in configs) + " | best/S1 | tv/best |")
print("|" + "---|" * (6 + len(configs)))
for (n, c, h, w), with_mask, cl in itertools.product(sizes, (False, True), (False, True)):
    x, off, m, wt, b = make_case(n, c, h, w, "cuda")
    if cl:
        x = x.contiguous(memory_format=torch.channels_last)
    ours = (lambda: modulated_deform_conv(x, off, m, wt, b, 1, 1, 1, 1, 1)) if with_mask else (lambda: deform_conv(x, off, wt, 1, 1, 1, 1, 1))
    tv = lambda: torchvision.ops.deform_conv2d(x, off, wt, b if with_mask else None, padding=(1, 1), mask=m if with_mask else None)
    with torch.no_grad():
        set_cfg(1, 1); ref = ours().float()
        for s, p in configs:
            set_cfg(s, p); got = ours()
            err = (got - ref).abs().max().item()
            assert err < 1e-3 * ref.abs().max().item(), (s, p, err)
            assert got.is_contiguous(memory_format=torch.channels_last) == cl
        best = {k: float("inf") for k in configs + ["tv"]}
        for _ in range(3):
            for s, p in configs:
                set_cfg(s, p)
                best[(s, p)] = min(best[(s, p)], time_fn(ours, "cuda", warmup=3, iters=40))
            best["tv"] = min(best["tv"], time_fn(tv, "cuda", warmup=3, iters=40))
    b_ = min(best[k] for k in configs)
    print(f"| {n}x{c}x{h}x{w} | {'v2' if with_mask else 'v1'} | {'NHWC' if cl else 'NCHW'} | {best['tv']:.3f} | "
          + " | ".join(f"{best[k]:.3f}" for k in configs) + f" | {b_ / best[(1, 1)]:.3f} | {best['tv'] / b_:.3f} |", flush=True)
set_cfg(1, 1)
