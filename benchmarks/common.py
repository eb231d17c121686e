"""Timing and reporting helpers shared by every benchmark in this folder.

Each benchmark runs our implementation and its peer (torchvision or a plain-PyTorch
reference) in the same process on the same inputs, and prints a markdown table of
median times and the ratio ours/peer (below 1.0 means we are faster).
"""
import argparse
import statistics
import time
from typing import Callable, List, Sequence

import torch


_gpu_warm = False


def warm_up_gpu(seconds: float = 1.0) -> None:
    """Keep the GPU busy for a moment so that its clocks are up before the first timed
    case: otherwise whichever implementation is timed first runs on a cold GPU. Once per
    process."""
    global _gpu_warm
    if _gpu_warm:
        return
    a = torch.randn(4096, 4096, device="cuda")
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(10):
            a @ a
        torch.cuda.synchronize()
    _gpu_warm = True


def time_fn(fn: Callable[[], object], device: str = "cpu", warmup: int = 3, iters: int = 10) -> float:
    """Median wall time of ``fn()`` in milliseconds (CUDA events on a GPU)."""
    if torch.device(device).type == "cuda":
        warm_up_gpu()
    for _ in range(warmup):
        fn()
    samples = []
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
        for _ in range(iters):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            samples.append(start.elapsed_time(end))
    else:
        for _ in range(iters):
            t0 = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(samples)


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="small sizes and few iterations (smoke test)")
    parser.add_argument("--iters", type=int, default=None, help="timed iterations per case")
    args = parser.parse_args()
    if args.iters is None:
        args.iters = 3 if args.quick else 20
    return args


def print_table(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> None:
    """Print rows as a markdown table (floats with 3 significant decimals)."""

    def fmt(value: object) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    lines: List[str] = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    print("\n".join(lines), flush=True)


def describe_device(device: str) -> str:
    if torch.device(device).type == "cuda":
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__}, CUDA {torch.version.cuda})"
    return f"CPU x{torch.get_num_threads()} threads (torch {torch.__version__})"


