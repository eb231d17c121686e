"""EXPERIMENT (issue 13): the forward's wall time with the previous Python wrapper
(1937a6c, autograd Function always, 3 new_empty a call) against the new one (direct call
without gradients to record, one shared unused tensor), both over this build's _C, and the
_C entry point alone. Interleaved rounds in one process, best-of-rounds median ms."""
import sys, itertools
import torch, torchvision
sys.path.insert(0, "benchmarks"); sys.path.insert(0, "scripts/gpu")
from common import time_fn, warm_up_gpu
from bench_deform_conv import make_case
import old_deform_conv as old
from detectron2.layers import deform_conv as new
from detectron2.layers._ops import load_C

C = load_C()
warm_up_gpu(2.0)
sizes = [(2, 256, 64, 64), (8, 512, 25, 34), (2, 256, 50, 84), (8, 256, 50, 84), (8, 256, 25, 42), (2, 256, 25, 42)]
print("| size | variant | old wrapper | new wrapper | _C only | torchvision | new/old | tv/new |")
print("|---|---|---|---|---|---|---|---|")
for (n, c, h, w), with_mask in itertools.product(sizes, (False, True)):
    x, off, m, wt, b = make_case(n, c, h, w, "cuda")
    out, unused = x.new_empty(0), x.new_empty(0)
    if with_mask:
        fns = {"old": lambda: old.modulated_deform_conv(x, off, m, wt, b, 1, 1, 1, 1, 1),
               "new": lambda: new.modulated_deform_conv(x, off, m, wt, b, 1, 1, 1, 1, 1),
               "C": lambda: C.modulated_deform_conv_forward(x, wt, b, unused, off, m, out, unused, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, True),
               "tv": lambda: torchvision.ops.deform_conv2d(x, off, wt, b, padding=(1, 1), mask=m)}
    else:
        fns = {"old": lambda: old.deform_conv(x, off, wt, 1, 1, 1, 1, 1),
               "new": lambda: new.deform_conv(x, off, wt, 1, 1, 1, 1, 1),
               "C": lambda: C.deform_conv_forward(x, wt, off, out, unused, unused, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 64),
               "tv": lambda: torchvision.ops.deform_conv2d(x, off, wt, padding=(1, 1))}
    ref = fns["old"]()
    fns["C"]()
    assert torch.equal(fns["new"](), ref) and torch.equal(out, ref)
    best = {k: float("inf") for k in fns}
    for _ in range(3):
        for k, f in fns.items():
            best[k] = min(best[k], time_fn(f, "cuda", warmup=3, iters=50))
    print(f"| {n}x{c}x{h}x{w} | {'v2' if with_mask else 'v1'} | {best['old']:.3f} | {best['new']:.3f} | {best['C']:.3f} | "
          f"{best['tv']:.3f} | {best['new'] / best['old']:.3f} | {best['tv'] / best['new']:.3f} |", flush=True)
