"""Where a Mask R-CNN R50-FPN training step spends its time, stage by stage.

Runs the model-zoo Mask R-CNN (and torchvision's peer, as in bench_mask_rcnn.py) for a
few training steps on synthetic data, then prints:
  * per stage (backbone, RPN, ROI box head, mask head, loss sum, backward, optimizer):
    the median CUDA-event time of that stage, measured around each module's forward;
  * torch.profiler's top operators by self CPU and by self device time;
  * counts of the calls that make the host wait for the GPU (item, nonzero, sync copies).

Usage: python benchmarks/profile_mask_rcnn_train.py --device cuda --batch 8 [--amp] [--peer]
       [--trace FILE.json.gz [--stack]]
"""
import argparse
import gzip
import os
import shutil
import statistics
import sys
from collections import defaultdict
from typing import Dict, List

import torch
from torch.profiler import ProfilerActivity, profile, record_function

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_mask_rcnn as bench  # noqa: E402
from common import describe_device  # noqa: E402

# Submodules of GeneralizedRCNN timed as stages (attribute paths).
STAGES = ["backbone", "proposal_generator", "roi_heads.box_head", "roi_heads.box_predictor",
          "roi_heads.mask_head", "roi_heads.mask_pooler", "roi_heads.box_pooler"]
PEER_STAGES = ["backbone", "rpn", "roi_heads.box_head", "roi_heads.box_predictor", "roi_heads.mask_head",
               "roi_heads.mask_predictor", "roi_heads.box_roi_pool", "roi_heads.mask_roi_pool"]
SYNC_OPS = ("aten::item", "aten::_local_scalar_dense", "aten::nonzero", "cudaStreamSynchronize",
            "cudaDeviceSynchronize", "cudaMemcpyAsync", "aten::is_nonzero")


def _resolve(model: torch.nn.Module, path: str):
    obj = model
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def _instrument(model: torch.nn.Module, paths: List[str], times: Dict[str, List[float]]):
    """Record a CUDA-event interval and a profiler range around each stage's forward."""
    handles = []
    for path in paths:
        module = _resolve(model, path)
        if module is None:
            continue
        state = {}

        def pre(mod, inputs, path=path, state=state):
            state["range"] = record_function(f"stage::{path}")
            state["range"].__enter__()
            state["start"] = torch.cuda.Event(enable_timing=True)
            state["start"].record()

        def post(mod, inputs, output, path=path, state=state):
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            state["range"].__exit__(None, None, None)
            times[path].append((state["start"], end))

        handles.append(module.register_forward_pre_hook(pre))
        handles.append(module.register_forward_hook(post))
    return handles


def _step_fn(model, call, amp: bool, times):
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)

    def event():
        e = torch.cuda.Event(enable_timing=True)
        e.record()
        return e

    def run():
        t0 = event()
        with bench.EventStorage(0), torch.autocast("cuda", dtype=torch.float16, enabled=amp):
            with record_function("stage::forward"):
                losses = call()
        t1 = event()
        with record_function("stage::loss_sum"):
            loss = sum(losses.values()) if isinstance(losses, dict) else losses
        t2 = event()
        optimizer.zero_grad(set_to_none=True)
        with record_function("stage::backward"):
            scaler.scale(loss).backward()
        t3 = event()
        with record_function("stage::optimizer"):
            scaler.step(optimizer)
            scaler.update()
        t4 = event()
        times["forward (all)"].append((t0, t1))
        times["loss sum"].append((t1, t2))
        times["backward"].append((t2, t3))
        times["optimizer"].append((t3, t4))
        times["step"].append((t0, t4))

    return run


def _report(name: str, times: Dict[str, List], warmup: int) -> None:
    torch.cuda.synchronize()
    print(f"\n### {name}: stage times (median ms over steps; nested stages overlap)")
    print("| stage | ms |\n|---|---|")
    for stage, pairs in times.items():
        vals = [s.elapsed_time(e) for s, e in pairs[warmup:]]
        if vals:
            print(f"| {stage} | {statistics.median(vals):.2f} |")


def _export(prof, path: str) -> None:
    if not path.endswith(".gz"):
        prof.export_chrome_trace(path)
        return
    plain = path[: -len(".gz")]
    prof.export_chrome_trace(plain)
    with open(plain, "rb") as src, gzip.open(path, "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.remove(plain)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--amp", action="store_true")
    parser.add_argument("--peer", action="store_true", help="also profile torchvision's Mask R-CNN")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--rows", type=int, default=35)
    parser.add_argument("--trace", default="", help="write a chrome trace of our model here ("
                        "gzipped if the name ends in .gz); benchmarks/trace_gaps.py reads it")
    parser.add_argument("--stack", action="store_true", help="record Python stacks in the trace "
                        "(names the code behind each gap, but slows the host down)")
    args = parser.parse_args()
    bench_args = argparse.Namespace(batch=args.batch, train=True)
    ours_inputs, peer_images, peer_targets = bench._inputs(bench_args, "cuda", (800, 1333))
    print(f"Mask R-CNN R50-FPN training, batch {args.batch}, amp={args.amp} on {describe_device('cuda')}")

    sides = [("detectron2-neo", bench._ours, STAGES, lambda m: m(ours_inputs))]
    if args.peer:
        sides.append(("torchvision", bench._peer, PEER_STAGES, lambda m: m(peer_images, peer_targets)))
    for name, build, paths, call in sides:
        model = build("cuda", True)
        bench._calibrate_frozen_bn(model, (lambda m=model: m(ours_inputs)) if name == "detectron2-neo"
                                   else (lambda m=model: m(peer_images)))
        times: Dict[str, List] = defaultdict(list)
        handles = _instrument(model, paths, times)
        run = _step_fn(model, lambda m=model, c=call: c(m), args.amp, times)
        warmup = 2
        for _ in range(warmup):
            run()
        torch.cuda.synchronize()
        tracing = bool(args.trace) and name == "detectron2-neo"
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], with_stack=tracing and args.stack) as prof:
            for _ in range(args.steps):
                run()
            torch.cuda.synchronize()
        _report(name, times, warmup)
        events = prof.key_averages()
        print(f"\n### {name}: host-device synchronisations over {args.steps} steps")
        print("| op | calls | self CPU ms |\n|---|---|---|")
        for e in events:
            if e.key in SYNC_OPS:
                print(f"| {e.key} | {e.count} | {e.self_cpu_time_total / 1000:.1f} |")
        print(f"\n### {name}: top ops by self device time ({args.steps} steps)")
        print(events.table(sort_by="self_cuda_time_total", row_limit=args.rows, max_name_column_width=60))
        print(f"\n### {name}: top ops by self CPU time ({args.steps} steps)")
        print(events.table(sort_by="self_cpu_time_total", row_limit=args.rows, max_name_column_width=60))
        if tracing:
            _export(prof, args.trace)
        for h in handles:
            h.remove()
        del model, run
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
