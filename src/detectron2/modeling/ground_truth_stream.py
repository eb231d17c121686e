"""Run ground-truth bookkeeping beside the backbone, on a side CUDA stream.

Labelling and sampling anchors needs only the ground truth and the anchors, yet it syncs
the host with the device (the sample counts, nonzero) and then issues many small ops
image by image. On the stream that runs the backbone, each sync waits for the whole
backbone, and the device then idles while the host works through the small ops. On a
side stream that waits only for the ground truth to be on the device, the syncs return
at once and the small ops run while the backbone computes.

The ops, their order and the random draws (the generator is advanced on the host, in
program order) are those of the plain call, so the results are equal.

A meta-architecture marks, with ``ground_truth_ready``, the point where its ground truth
is on the device; inside that block, ``beside_backbone(fn)`` runs ``fn`` on the side
stream. ``fn`` may read only tensors that existed at that point (the ground truth,
module buffers), never the backbone's outputs. Elsewhere (CPU, tracing, scripting,
graph capture, no mark), ``beside_backbone`` simply calls ``fn``.
"""
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Callable, Dict, Iterator, Optional, TypeVar

import torch

__all__ = ["ENABLED", "ground_truth_ready", "beside_backbone"]

# Switch for comparisons (benchmarks, tests): False runs everything on the current stream.
ENABLED = True

T = TypeVar("T")
_READY: ContextVar[Optional[torch.cuda.Event]] = ContextVar("detectron2_ground_truth_ready", default=None)
_SIDE_STREAMS: Dict[int, torch.cuda.Stream] = {}


def _can_overlap(device: torch.device) -> bool:
    if not ENABLED or device.type != "cuda" or torch.jit.is_scripting() or torch.jit.is_tracing():
        return False
    if torch.compiler.is_compiling():
        return False
    return not torch.cuda.is_current_stream_capturing()


@contextmanager
def ground_truth_ready(device: torch.device) -> Iterator[None]:
    """Marks that the ground truth the model was given is now on ``device`` (it was
    copied there on the current stream): ``beside_backbone`` calls inside the block may
    start from this point, whatever is queued after it."""
    device = torch.device(device)
    if not _can_overlap(device):
        yield
        return
    event = torch.cuda.Event()
    event.record(torch.cuda.current_stream(device))
    token = _READY.set(event)
    try:
        yield
    finally:
        _READY.reset(token)


def _side_stream(device: torch.device) -> torch.cuda.Stream:
    index = device.index if device.index is not None else torch.cuda.current_device()
    if index not in _SIDE_STREAMS:
        _SIDE_STREAMS[index] = torch.cuda.Stream(device=index)
    return _SIDE_STREAMS[index]


def _keep_for(obj: Any, stream: torch.cuda.Stream) -> None:
    """Tell the allocator that ``stream`` uses the tensors in ``obj`` (made on the side
    stream), so their memory is not reused before that stream is done with them."""
    if isinstance(obj, torch.Tensor):
        if obj.is_cuda:
            obj.record_stream(stream)
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            _keep_for(item, stream)
    elif isinstance(obj, dict):
        for item in obj.values():
            _keep_for(item, stream)
    elif isinstance(getattr(obj, "tensor", None), torch.Tensor):  # Boxes, RotatedBoxes
        _keep_for(obj.tensor, stream)


def beside_backbone(fn: Callable[[], T], device: torch.device) -> T:
    """``fn()``, run on a side stream that starts where ``ground_truth_ready`` marked,
    when called inside such a block on a CUDA ``device``; the current stream then waits
    for it before using the results. Otherwise just ``fn()``."""
    ready = _READY.get()
    if ready is None or not _can_overlap(torch.device(device)):
        return fn()
    main = torch.cuda.current_stream(device)
    side = _side_stream(main.device)
    side.wait_event(ready)
    with torch.cuda.stream(side):
        result = fn()
    main.wait_stream(side)
    _keep_for(result, main)
    return result
