"""The GEMM inside deformable convolution's forward, in every operand layout cuBLAS takes.

    python benchmarks/bench_deform_gemm.py [--device cuda] [--quick]

The forward is one float32 GEMM of the weight [C_out, C_in*9] with the im2col column
matrix. Which layout the columns are written in (channel-major [C_in*9, N*Ho*Wo] as
upstream and torchvision do, or pixel-major [N*Ho*Wo, 9*C_in]) and which operand order
is asked of cuBLAS (out or out^T) change the kernel cuBLAS picks; this prints each form's
time at the sizes of issue 13, relative to the channel-major form ("cols" below), with
cuBLAS and cuBLASLt. Kernel-only time: 30 calls between two CUDA events.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import describe_device, parse_args, print_table, time_fn, warm_up_gpu  # noqa: E402


def kernel_ms(fn, device: str, calls: int = 30) -> float:
    """Mean time of one call with the device queue kept full (no per-call host latency);
    on the CPU, time_fn's median."""
    if device != "cuda":
        return time_fn(fn, device)
    warm_up_gpu()
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(calls):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / calls


def forms(weight: torch.Tensor, cols: torch.Tensor, cols_t: torch.Tensor, n: int):
    """name -> a call computing the GEMM (and, where the result is not [C_out, N*P] ordered
    by image, the copy that gives the [N, C_out, P] output)."""
    c_out = weight.size(0)
    w = weight.reshape(c_out, -1)
    return {
        "cols: out = W @ cols": lambda: torch.mm(w, cols),
        "cols: bmm (batch 1)": lambda: torch.bmm(w[None], cols[None]),
        "cols: out^T = cols^T @ W^T": lambda: torch.mm(cols.t(), w.t()),
        "pixel-major: out^T = colsT @ W^T": lambda: torch.mm(cols_t, w.t()),
        "pixel-major: out = W @ colsT^T": lambda: torch.mm(w, cols_t.t()),
        "reorder copy [C_out,N,P]->[N,C_out,P]": lambda: torch.empty(
            n, c_out, cols.size(1) // n, device=cols.device).copy_(
            torch.empty(c_out, n, cols.size(1) // n, device=cols.device).transpose(0, 1)),
        "reorder copy [N,P,C_out]->[N,C_out,P]": lambda: torch.empty(
            n, c_out, cols.size(1) // n, device=cols.device).copy_(
            torch.empty(n, cols.size(1) // n, c_out, device=cols.device).transpose(1, 2)),
    }


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    sizes = [(1, 16, 8, 8)] if args.quick else [(2, 256, 64, 64), (8, 512, 25, 34), (8, 256, 50, 84)]
    libraries = ["cublas", "cublaslt"] if args.device == "cuda" else ["default"]
    print(f"# deform_conv forward GEMM forms on {describe_device(args.device)}\n")
    rows = []
    for n, c, h, w in sizes:
        gen = torch.Generator().manual_seed(0)
        weight = torch.randn(c, c, 3, 3, generator=gen).to(args.device)
        cols = torch.randn(c * 9, n * h * w, generator=gen).to(args.device)
        cols_t = cols.t().contiguous()
        for library in libraries:
            if library != "default":
                torch.backends.cuda.preferred_blas_library(library)
            times = {name: kernel_ms(fn, args.device) for name, fn in forms(weight, cols, cols_t, n).items()}
            base = times["cols: out = W @ cols"]
            flops = 2.0 * c * c * 9 * n * h * w
            for name, ms in times.items():
                tflops = flops / ms / 1e9 if "copy" not in name else "-"
                rows.append([f"{n}x{c}x{h}x{w}", library, name, ms, ms / base, tflops])
    print_table(rows, ["N x C x H x W", "library", "form", "ms / call", "/ cols form", "TFLOP/s"])


if __name__ == "__main__":
    main()
