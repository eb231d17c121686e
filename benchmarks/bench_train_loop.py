"""Per-iteration overhead of the training loop.

Cases (ours vs. peer, same process, same model, data and optimizer):
- SimpleTrainer.train (no hooks) vs. a plain PyTorch loop (next batch, forward, sum of the
  loss dict, zero_grad, backward, step): the cost of the loss bookkeeping (losses ->
  Python floats, comm.gather, EventStorage) and of the loop itself.
- SimpleTrainer with the hooks DefaultTrainer uses (IterationTimer, LRScheduler,
  PeriodicWriter with the JSON and console writers every 20 iterations) vs. the same
  plain loop stepping a torch LR scheduler.
- The same with async_write_metrics=True (metrics written in a background thread).
- AMPTrainer (bf16 on CPU, fp16 on CUDA) vs. a plain autocast + GradScaler loop.
The model returns five losses, as Mask R-CNN does. Two sizes: a tiny MLP (the loop's
overhead dominates) and a small conv net on 2 images (compute dominates). The runs of
ours and the peer alternate, and medians are reported, so that load changes on a shared
machine hit both sides alike.

Usage: python benchmarks/bench_train_loop.py [--device cuda] [--quick]
"""
import logging
import os
import statistics
import sys
import tempfile

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import describe_device, parse_args, print_table, time_fn  # noqa: E402

from detectron2.engine import AMPTrainer, SimpleTrainer, hooks  # noqa: E402
from detectron2.utils.events import CommonMetricPrinter, JSONWriter  # noqa: E402

LOSS_NAMES = ["loss_cls", "loss_box_reg", "loss_mask", "loss_rpn_cls", "loss_rpn_loc"]


class _Model(nn.Module):
    def __init__(self, conv: bool):
        super().__init__()
        if conv:
            self.body = nn.Sequential(
                nn.Conv2d(3, 32, 3, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.ReLU(),
                nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            )
            width = 64
        else:
            self.body = nn.Sequential(nn.Linear(16, 32), nn.ReLU())
            width = 32
        self.heads = nn.ModuleDict({k: nn.Linear(width, 1) for k in LOSS_NAMES})

    def forward(self, x):
        feat = self.body(x)
        return {k: head(feat).float().pow(2).mean() for k, head in self.heads.items()}


class _Repeat:
    """An endless loader of one batch (no data loading cost on either side)."""

    def __init__(self, batch):
        self.batch = batch

    def __iter__(self):
        while True:
            yield self.batch


def _setup(conv: bool, device: str, image_size: int):
    torch.manual_seed(0)
    model = _Model(conv).to(device)
    shape = (2, 3, image_size, image_size) if conv else (16, 16)
    batch = torch.randn(*shape, device=device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    return model, _Repeat(batch), opt


def _plain_loop(model, loader, opt, n, scheduler=None, amp=None):
    it = iter(loader)
    for _ in range(n):
        data = next(it)
        if amp is None:
            losses = sum(model(data).values())
            opt.zero_grad()
            losses.backward()
            opt.step()
        else:
            device_type, dtype, scaler = amp
            with torch.autocast(device_type=device_type, dtype=dtype):
                losses = sum(model(data).values())
            opt.zero_grad()
            scaler.scale(losses).backward()
            scaler.step(opt)
            scaler.update()
        if scheduler is not None:
            scheduler.step()


def _default_hooks(opt, out_dir, n):
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[10**9])
    writers = [CommonMetricPrinter(n), JSONWriter(os.path.join(out_dir, "metrics.json"))]
    return [hooks.IterationTimer(), hooks.LRScheduler(opt, sched), hooks.PeriodicWriter(writers, period=20)]


def _case(conv, device, n, iters, kind, out_dir, image_size):
    model, loader, opt = _setup(conv, device, image_size)
    amp = None
    if kind == "amp":
        dtype = torch.float16 if device == "cuda" else torch.bfloat16
        amp = (device, dtype, torch.amp.GradScaler(device))

    def ours():
        if kind == "amp":
            trainer = AMPTrainer(model, loader, opt, precision=amp[1])
        else:
            trainer = SimpleTrainer(model, loader, opt, async_write_metrics=(kind == "hooks+async"))
        if kind.startswith("hooks"):
            trainer.register_hooks(_default_hooks(opt, out_dir, n))
        trainer.train(0, n)

    def peer():
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[10**9]) if kind.startswith("hooks") else None
        _plain_loop(model, loader, opt, n, scheduler=sched, amp=amp)

    return _interleaved(ours, peer, device, iters, n)


def _interleaved(ours, peer, device, iters, n):
    """Median ms/iteration of each, alternating the two runs so that a change in the
    machine's load hits both sides alike."""
    ours()
    peer()  # warmup
    t_ours, t_peer = [], []
    for _ in range(iters):
        t_ours.append(time_fn(ours, device=device, warmup=0, iters=1))
        t_peer.append(time_fn(peer, device=device, warmup=0, iters=1))
    return statistics.median(t_ours) / n, statistics.median(t_peer) / n


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    # The console writer would flood the output; the table is what matters here.
    logging.getLogger("detectron2").setLevel(logging.WARNING)
    n = 10 if args.quick else 100
    image_size = 64 if args.quick else 128
    print(f"# train loop overhead on {describe_device(args.device)}, {n} iterations per run\n")
    rows = []
    with tempfile.TemporaryDirectory() as out_dir:
        for conv, size in [(False, "tiny MLP, batch 16"), (True, f"conv net, 2x3x{image_size}x{image_size}")]:
            for kind in ["bare", "hooks", "hooks+async", "amp"]:
                ours, peer = _case(conv, args.device, n, args.iters, kind, out_dir, image_size)
                rows.append([size, kind, ours, peer, (ours - peer) * 1e3, ours / peer])
    print_table(rows, ["model", "trainer", "ours ms/iter", "plain loop ms/iter", "overhead us/iter", "ratio"])


if __name__ == "__main__":
    main()
