"""Overheads of the config system and of per-iteration metric logging.

Cases (ours vs. peer, same process, same inputs):
- get_cfg + merge_from_file of a two-file _BASE_ chain vs. fvcore's CfgNode doing the same
  on a copy of the same defaults (what our version checks and PathManager cost).
- put_scalars of 10 losses per iteration into an EventStorage vs. the bare fvcore
  HistoryBuffer updates underneath. On CUDA the losses are 0-dim CUDA tensors, so both
  sides include the device->host copies.
- the windowed medians writers ask for (latest_with_smoothing_hint) vs. fvcore's numpy
  HistoryBuffer.median over the same windows; JSONWriter.write alone, for reference.

Usage: python benchmarks/bench_config_events.py [--device cuda] [--quick]
"""
import os
import sys
import tempfile

import torch
from fvcore.common.config import CfgNode as FvCfgNode
from fvcore.common.history_buffer import HistoryBuffer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import describe_device, parse_args, print_table, time_fn  # noqa: E402

from detectron2.config import get_cfg  # noqa: E402
from detectron2.utils.events import EventStorage, JSONWriter  # noqa: E402

BASE = """MODEL:
  MASK_ON: True
  RPN:
    IN_FEATURES: ["p2", "p3", "p4", "p5", "p6"]
  ROI_BOX_HEAD:
    NUM_FC: 2
SOLVER:
  STEPS: (60000, 80000)
VERSION: 2
"""
CHILD = """_BASE_: "base.yaml"
SOLVER:
  MAX_ITER: 270000
"""
NUM_LOSSES = 10


def _config_case(tmp: str, iters: int):
    with open(os.path.join(tmp, "base.yaml"), "w") as f:
        f.write(BASE)
    child = os.path.join(tmp, "child.yaml")
    with open(child, "w") as f:
        f.write(CHILD)
    fv_defaults = FvCfgNode(get_cfg())  # same keys, plain fvcore class

    def ours():
        get_cfg().merge_from_file(child)

    def peer():
        fv_defaults.clone().merge_from_file(child, allow_unsafe=True)

    return time_fn(ours, iters=iters), time_fn(peer, iters=iters)


def _put_case(device: str, iters: int, steps: int):
    losses = {f"loss_{i}": torch.rand((), device=device) for i in range(NUM_LOSSES)}

    def ours():
        with EventStorage() as storage:
            for _ in range(steps):
                storage.put_scalars(**{k: v.item() for k, v in losses.items()})
                storage.step()

    def peer():
        buffers = {k: HistoryBuffer() for k in losses}
        for it in range(steps):
            for k, v in losses.items():
                buffers[k].update(v.item(), it)

    return time_fn(ours, device=device, iters=iters), time_fn(peer, device=device, iters=iters)


def _smoothing_case(tmp: str, iters: int, steps: int):
    storage = EventStorage()
    for _ in range(steps):
        storage.put_scalars(**{f"loss_{i}": float(torch.rand(())) for i in range(NUM_LOSSES)})
        storage.step()
    writer = JSONWriter(os.path.join(tmp, "metrics.json"))

    def ours():
        storage.latest_with_smoothing_hint(20)

    def peer():  # fvcore's numpy median over the same windows
        {k: h.median(storage.count_samples(k, 20)) for k, h in storage.histories().items()}

    def write():
        storage.step()
        storage.put_scalar("lr", 0.02, smoothing_hint=False)
        writer.write()

    with storage:
        write_ms = time_fn(write, iters=iters)
    writer.close()
    return time_fn(ours, iters=iters), time_fn(peer, iters=iters), write_ms


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    steps = 100 if args.quick else 1000
    print(f"device: {describe_device(args.device)}\n")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ours, peer = _config_case(tmp, args.iters)
        rows.append(("get_cfg + merge_from_file (_BASE_ chain)", ours, peer, ours / peer))
        ours, peer = _put_case(args.device, args.iters, steps)
        rows.append((f"put_scalars: {steps} iterations x {NUM_LOSSES} losses", ours, peer, ours / peer))
        ours, peer, write_ms = _smoothing_case(tmp, args.iters, steps)
        rows.append((f"latest_with_smoothing_hint ({NUM_LOSSES} scalars, window 20)", ours, peer, ours / peer))
        rows.append(("JSONWriter.write (incl. flush + fsync)", write_ms, "-", "-"))
    print_table(rows, ["case", "ours ms", "peer ms", "ours/peer"])


if __name__ == "__main__":
    main()
