"""Where an op's GPU time goes: the CUDA kernels of one call, ours next to the peer's.

    python benchmarks/profile_ops.py [--device cuda] [--quick] [--timeline]

For the issue-13 shapes (deformable convolution forward, nms_rotated at 2k and 10k boxes) it
profiles `iters` calls of each implementation with torch.profiler and prints, per
kernel, the calls and the device microseconds per op call, so a ratio in the
benchmarks can be traced to a kernel (im2col vs GEMM vs copies, sort vs mask vs reduce).

A second table per shape splits a call's wall time (CUDA events around one call, as the
benchmarks time it) into kernel time and GPU idle time, next to the host time of the call
and the delay from the call to its first kernel: the part of a ratio that is launch
latency rather than kernels. `--timeline` also prints one call's CPU and GPU events.
"""
import os
import statistics
import sys
import time
from collections import defaultdict
from typing import Callable, Dict, List, Tuple

import torch
import torchvision
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
from bench_box_iou_rotated import proposals  # noqa: E402
from bench_deform_conv import make_case  # noqa: E402
from common import describe_device, parse_args, print_table  # noqa: E402

from detectron2.layers import nms_rotated  # noqa: E402
from detectron2.layers._ops import load_C  # noqa: E402
from detectron2.layers.deform_conv import deform_conv  # noqa: E402


def kernel_breakdown(fn: Callable[[], object], iters: int) -> List[Tuple[str, float, float]]:
    """(kernel name, launches per call, device us per call), largest first."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(iters):
            fn()
        torch.cuda.synchronize()
    totals: Dict[str, List[float]] = defaultdict(lambda: [0.0, 0.0])
    for event in prof.events():
        if event.device_type == torch.autograd.DeviceType.CUDA:
            totals[event.name][0] += 1
            totals[event.name][1] += event.device_time
    rows = [(name[:90], count / iters, us / iters) for name, (count, us) in totals.items()]
    return sorted(rows, key=lambda r: -r[2])


def call_timeline(fn: Callable[[], object], iters: int) -> Tuple[float, List[Tuple[float, str, str, float]]]:
    """Median us from the start of a call to its first kernel, and the events (start us
    relative to the call, CPU/GPU, name, duration us) of the last profiled call."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    delays, events = [], []
    for _ in range(iters):
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            with torch.profiler.record_function("one call"):
                fn()
            torch.cuda.synchronize()
        evs = prof.events()
        call = next(e for e in evs if e.name == "one call" and e.device_type == torch.autograd.DeviceType.CPU)
        t0 = call.time_range.start
        kernels = [e for e in evs if e.device_type == torch.autograd.DeviceType.CUDA]
        if kernels:
            delays.append(min(k.time_range.start for k in kernels) - t0)
        events = sorted(
            ((e.time_range.start - t0, "GPU" if e.device_type == torch.autograd.DeviceType.CUDA else "CPU",
              e.name[:70], e.time_range.elapsed_us()) for e in evs if e.name != "one call"),
            key=lambda r: r[0],
        )
    return (statistics.median(delays) if delays else float("nan")), events


def wall_and_host_us(fn: Callable[[], object], iters: int) -> Tuple[float, float]:
    """Median wall us of a call between CUDA events (as the benchmarks time it), and the
    median host us of a call on an idle GPU (launches are asynchronous)."""
    for _ in range(3):
        fn()
    walls, hosts = [], []
    for _ in range(iters):
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        t0 = time.perf_counter()
        start.record()
        fn()
        end.record()
        hosts.append((time.perf_counter() - t0) * 1e6)
        end.synchronize()
        walls.append(start.elapsed_time(end) * 1e3)
    return statistics.median(walls), statistics.median(hosts)


def report(title: str, implementations: Dict[str, Callable[[], object]], iters: int, timeline: bool) -> None:
    print(f"\n### {title}\n")
    latency_rows = []
    for label, fn in implementations.items():
        rows = kernel_breakdown(fn, iters)
        total = sum(r[2] for r in rows)
        print(f"{label}: {total:.1f} us of kernels per call\n")
        print_table([(name, count, us, us / total if total else 0.0) for name, count, us in rows],
                    ["kernel", "launches", "us per call", "share"])
        print()
        wall, host = wall_and_host_us(fn, iters)
        first, events = call_timeline(fn, max(3, iters // 4))
        latency_rows.append((label, wall, total, wall - total, host, first))
        if timeline:
            print(f"one call of {label}, events by start (us from the call):\n")
            print_table(events, ["start us", "where", "event", "us"])
            print()
    print_table(latency_rows, ["implementation", "wall us", "kernel us", "GPU idle us", "host us of the call",
                               "call to first kernel us"])


def main() -> None:
    timeline = "--timeline" in sys.argv
    if timeline:
        sys.argv.remove("--timeline")
    args = parse_args(__doc__.splitlines()[0])
    if args.device != "cuda" or not torch.cuda.is_available():
        raise SystemExit("profile_ops.py: needs --device cuda and a visible GPU (kernel timings)")
    print(f"# CUDA kernels per call on {describe_device(args.device)}")
    shapes = [(2, 64, 16, 16)] if args.quick else [(2, 256, 64, 64), (8, 512, 25, 34)]
    for n, c, h, w in shapes:
        x, offset, _, weight, _ = make_case(n, c, h, w, args.device)
        report(
            f"deform_conv forward {n}x{c}x{h}x{w}, 3x3, {c} out",
            {
                "detectron2": lambda: deform_conv(x, offset, weight, 1, 1, 1, 1, 1),
                # The C++ entry point alone: what the Python wrapper adds to a call.
                "detectron2 _C only": lambda: load_C().deform_conv_layer(x, offset, weight, 1, 1, 1, 1, 1, 1, 1, 1, 64),
                "torchvision": lambda: torchvision.ops.deform_conv2d(x, offset, weight, padding=(1, 1)),
            },
            args.iters,
            timeline,
        )
    for boxes in [300] if args.quick else [2000, 10000]:
        scores = torch.rand(boxes, generator=torch.Generator().manual_seed(boxes)).to(args.device)
        rotated = proposals(boxes, args.device, seed=boxes)
        flat = proposals(boxes, args.device, seed=boxes, angles=False)
        xyxy = torch.cat([flat[:, :2] - flat[:, 2:4] / 2, flat[:, :2] + flat[:, 2:4] / 2], dim=1)
        report(
            f"nms_rotated {boxes} boxes, IoU 0.7",
            {
                "detectron2 rotated": lambda: nms_rotated(rotated, scores, 0.7),
                "detectron2 angle 0": lambda: nms_rotated(flat, scores, 0.7),
                "torchvision nms (angle 0)": lambda: torchvision.ops.nms(xyxy, scores, 0.7),
            },
            args.iters,
            timeline,
        )


if __name__ == "__main__":
    main()
