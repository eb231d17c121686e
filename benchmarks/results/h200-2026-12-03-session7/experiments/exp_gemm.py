"""EXPERIMENT (issue 13): the forward GEMM with (a) today's form, out^T = cols^T W^T then
the reorder to NCHW; (b) one batched GEMM per image straight into NCHW (W expanded);
(c) split-K over s parts on s concurrent streams, summed; (d) the same on one stream.
Kernel time with the queue full (no host latency), mean of 30 calls."""
import sys
import torch
sys.path.insert(0, "benchmarks")
from common import warm_up_gpu

def kernel_ms(fn, calls=30):
    for _ in range(3): fn()
    torch.cuda.synchronize()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(calls): fn()
    b.record(); torch.cuda.synchronize()
    return a.elapsed_time(b) / calls

warm_up_gpu(2.0)
streams = [torch.cuda.Stream(priority=0) for _ in range(4)]
print("| size | form | ms | / today | max abs err |")
print("|---|---|---|---|---|")
for n, c, h, w in [(2, 256, 64, 64), (8, 512, 25, 34), (8, 256, 50, 84), (2, 256, 50, 84)]:
    g = torch.Generator().manual_seed(0)
    P, CK, M = h * w, c * 9, c
    W = (torch.randn(M, CK, generator=g) * 0.02).cuda()
    cols = torch.randn(CK, n * P, generator=g).cuda()
    out = torch.empty(n, M, P, device="cuda")
    ref = (W.double() @ cols.double()).view(M, n, P).transpose(0, 1)

    def today():
        rows = torch.mm(cols.t(), W.t())
        out.copy_(rows.view(n, P, M).transpose(1, 2))
    def bmm_nchw():
        torch.bmm(W.expand(n, M, CK), cols.view(CK, n, P).transpose(0, 1), out=out)
    def split(s, concurrent):
        def run():
            bounds = [round(i * CK / s / 8) * 8 for i in range(s)] + [CK]
            cur = torch.cuda.current_stream()
            parts = [None] * s
            for i in range(s):
                st = streams[i] if concurrent else cur
                if concurrent: st.wait_stream(cur)
                with torch.cuda.stream(st):
                    parts[i] = torch.mm(cols[bounds[i]:bounds[i + 1]].t(), W[:, bounds[i]:bounds[i + 1]].t())
            if concurrent:
                for i in range(s):
                    cur.wait_stream(streams[i]); parts[i].record_stream(cur)
            total = parts[0]
            for p_ in parts[1:]: total = total.add_(p_)
            out.copy_(total.view(n, P, M).transpose(1, 2))
        return run
    forms = {"today: cols^T W^T + reorder": today, "bmm per image into NCHW": bmm_nchw}
    for s in (2, 3, 4):
        forms[f"split-K {s}, concurrent streams"] = split(s, True)
    forms["split-K 3, one stream"] = split(3, False)
    base = None
    for name, fn in forms.items():
        ms = kernel_ms(fn)
        fn(); torch.cuda.synchronize()
        err = (out.double() - ref).abs().max().item()
        base = base or ms
        print(f"| {n}x{c}x{h}x{w} | {name} | {ms:.3f} | {ms / base:.3f} | {err:.2e} |", flush=True)
