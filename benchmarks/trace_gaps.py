"""Where the GPU waits for the host: idle gaps of a torch.profiler chrome trace.

Reads a trace written by ``profile_mask_rcnn_train.py --trace FILE`` (with ``--stack``, the
causes below name our Python frames; without, only the aten op) and prints, over the
profiled window:
  * device busy and idle time, and the idle time per stage (``stage::*`` annotations);
  * the idle time by cause: for each gap, the host-device synchronisation that made the
    device drain (the innermost detectron2 frame around the sync call), or, where no sync
    came first, the frame that was launching work too slowly ("host-bound in ...").

Usage: python benchmarks/trace_gaps.py TRACE.json[.gz] [--min-gap-us 5] [--rows 30]
"""
import argparse
import bisect
import gzip
import json
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

DEVICE_CATEGORIES = {"kernel", "gpu_memcpy", "gpu_memset"}
SYNC_CALLS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize", "cudaMemcpy")
OWN_CODE = ("detectron2/",)


def _load(path: str) -> List[dict]:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        return [e for e in json.load(f)["traceEvents"] if e.get("ph") == "X"]


def _busy_intervals(device_events: List[dict]) -> List[Tuple[float, float]]:
    """The union of the device's kernel/copy intervals, sorted."""
    merged: List[List[float]] = []
    for start, end in sorted((e["ts"], e["ts"] + e["dur"]) for e in device_events):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(s, e) for s, e in merged]


class _Frames:
    """Innermost enclosing event (of one thread's nested ranges) for a host timestamp."""

    def __init__(self, events: List[dict]):
        self.events = sorted(events, key=lambda e: e["ts"])
        self.starts = [e["ts"] for e in self.events]

    def innermost(self, t: float, max_walk: int = 20000) -> Optional[dict]:
        i = bisect.bisect_right(self.starts, t) - 1
        walked = 0
        while i >= 0 and walked < max_walk:
            e = self.events[i]
            if e["ts"] + e["dur"] >= t:
                return e
            i -= 1
            walked += 1
        return None


def _short(frame: Optional[dict]) -> str:
    if frame is None:
        return "(no detectron2 frame: record with --stack)"
    name = frame["name"]
    cut = name.rfind("detectron2/")
    return name[cut:] if cut >= 0 else name


def analyse(events: List[dict], min_gap_us: float) -> Dict[str, object]:
    device = [e for e in events if e.get("cat") in DEVICE_CATEGORIES]
    if not device:
        raise ValueError("the trace holds no device events (kernel, gpu_memcpy, gpu_memset)")
    launches = {e["args"]["correlation"]: e for e in events
                if e.get("cat") == "cuda_runtime" and "correlation" in e.get("args", {})}
    syncs = sorted((e for e in events if e.get("cat") == "cuda_runtime" and e["name"].startswith(SYNC_CALLS)),
                   key=lambda e: e["ts"] + e["dur"])
    sync_ends = [e["ts"] + e["dur"] for e in syncs]
    own = _Frames([e for e in events if e.get("cat") == "python_function"
                   and any(tag in e["name"] for tag in OWN_CODE)])
    ops = _Frames([e for e in events if e.get("cat") == "cpu_op"])
    stages = _Frames([e for e in events if e.get("cat") == "user_annotation" and e["name"].startswith("stage::")])
    device.sort(key=lambda e: e["ts"])
    starts = [e["ts"] for e in device]
    busy = _busy_intervals(device)
    window = busy[-1][1] - busy[0][0]
    idle_by_stage: Dict[str, float] = defaultdict(float)
    idle_by_cause: Dict[str, List[float]] = defaultdict(lambda: [0.0, 0])
    idle_total = 0.0
    for (_, gap_start), (gap_end, _) in zip(busy, busy[1:]):
        gap = gap_end - gap_start
        idle_total += gap
        if gap < min_gap_us:
            continue
        first = device[bisect.bisect_left(starts, gap_end)]
        launch = launches.get(first.get("args", {}).get("correlation"))
        launch_ts = launch["ts"] if launch else gap_end
        stage = stages.innermost(launch_ts)
        idle_by_stage[stage["name"] if stage else "(outside stages)"] += gap
        # The last sync that returned between the device draining and the next launch.
        k = bisect.bisect_right(sync_ends, launch_ts) - 1
        if k >= 0 and sync_ends[k] >= gap_start - 1:
            sync = syncs[k]
            op = ops.innermost(sync["ts"])
            cause = f"sync in {op['name'] if op else sync['name']} of {_short(own.innermost(sync['ts']))}"
        else:
            cause = f"host-bound in {_short(own.innermost(launch_ts))}"
        idle_by_cause[cause][0] += gap
        idle_by_cause[cause][1] += 1
    return {"window": window, "busy": sum(e - s for s, e in busy), "idle": idle_total,
            "by_stage": dict(idle_by_stage), "by_cause": dict(idle_by_cause)}


def _print(report: Dict[str, object], steps: int, rows: int) -> None:
    per = 1000.0 * steps
    print(f"device window {report['window'] / per:.2f} ms/step: busy {report['busy'] / per:.2f}, "
          f"idle {report['idle'] / per:.2f}")
    print("\n| stage at the next launch | idle ms/step |\n|---|---|")
    for name, us in sorted(report["by_stage"].items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {us / per:.2f} |")
    print("\n| cause of the gap | idle ms/step | gaps/step |\n|---|---|---|")
    causes: Sequence = sorted(report["by_cause"].items(), key=lambda kv: -kv[1][0])
    for name, (us, count) in causes[:rows]:
        print(f"| {name} | {us / per:.2f} | {count / steps:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("trace")
    parser.add_argument("--steps", type=int, default=1, help="steps in the trace (figures are per step)")
    parser.add_argument("--min-gap-us", type=float, default=5.0)
    parser.add_argument("--rows", type=int, default=30)
    args = parser.parse_args()
    _print(analyse(_load(args.trace), args.min_gap_us), args.steps, args.rows)


if __name__ == "__main__":
    main()
