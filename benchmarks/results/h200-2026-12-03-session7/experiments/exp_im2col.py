"""EXPERIMENT (issue 13): im2col kernel time by launch bounds (env D2_IM2COL_LB: 0 = none,
48 registers; 4 = 64 registers; 6 = 40 + spills; 8 = 32 + spills), profiler kernel us per
call, interleaved rounds, best of 3."""
import os, sys
import torch
from torch.profiler import profile, ProfilerActivity
sys.path.insert(0, "benchmarks")
from common import warm_up_gpu
from bench_deform_conv import make_case
from detectron2.layers.deform_conv import deform_conv, modulated_deform_conv

def im2col_us(fn, iters=20):
    for _ in range(3): fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(iters): fn()
        torch.cuda.synchronize()
    return sum(e.device_time for e in prof.events() if "im2col" in e.name) / iters

warm_up_gpu(2.0)
variants = ["0", "4", "6", "8"]
print("| size | variant | " + " | ".join(f"LB{v} us" for v in variants) + " |")
print("|---|---|" + "---|" * len(variants))
for n, c, h, w in [(2, 256, 64, 64), (8, 512, 25, 34), (8, 256, 50, 84), (2, 256, 25, 42)]:
    x, off, m, wt, b = make_case(n, c, h, w, "cuda")
    for with_mask in (False, True):
        fn = (lambda: modulated_deform_conv(x, off, m, wt, b, 1, 1, 1, 1, 1)) if with_mask else (lambda: deform_conv(x, off, wt, 1, 1, 1, 1, 1))
        os.environ["D2_IM2COL_LB"] = "0"; ref = fn()
        for v in variants:
            os.environ["D2_IM2COL_LB"] = v; assert torch.equal(fn(), ref), v
        best = {v: float("inf") for v in variants}
        for _ in range(3):
            for v in variants:
                os.environ["D2_IM2COL_LB"] = v
                best[v] = min(best[v], im2col_us(fn))
        print(f"| {n}x{c}x{h}x{w} | {'v2' if with_mask else 'v1'} | " + " | ".join(f"{best[v]:.1f}" for v in variants) + " |", flush=True)
os.environ["D2_IM2COL_LB"] = "0"
