"""Values derived from module buffers, kept until a buffer changes.

Upstream Detectron2 recomputes such values (e.g. FrozenBatchNorm2d's folded scale and
shift) in every forward, a few small ops each: hundreds per training step. A
cache checked against the buffers' identity, storage and version counter gives the
same values with none of those ops, and notices any change: an in-place update
(version), ``.data`` reassignment (storage), a new tensor or ``.to()`` (identity).
"""
from typing import Any, Callable, Hashable, Optional, Sequence, Tuple

import torch

__all__ = ["cacheable", "cached"]


def cacheable(tensors: Sequence[torch.Tensor]) -> bool:
    """False where a cache cannot see changes or would cut a graph: TorchScript and
    traces (which must record the computation), inference tensors (no version
    counter), tensors that require grad."""
    if torch.jit.is_scripting() or torch.jit.is_tracing():
        return False
    return not any(t.is_inference() or t.requires_grad for t in tensors)


def cached(owner: Any, name: str, tensors: Sequence[torch.Tensor], key: Hashable, compute: Callable[[], Any]) -> Any:
    """``compute()`` once for these ``tensors`` in their current state and ``key``, kept
    in ``owner.__dict__[name]`` (not a buffer: state_dict and checkpoints do not see it).
    The entry holds the tensors themselves, so that a new tensor can never pass for an
    old one by a reused id or address."""
    state = [(t._version, t.data_ptr()) for t in tensors]
    entry: Optional[Tuple] = owner.__dict__.get(name)
    hit = (
        entry is not None
        and entry[2] == key
        and entry[1] == state
        and len(entry[0]) == len(tensors)
        and all(a is b for a, b in zip(entry[0], tensors))
    )
    if not hit:
        with torch.no_grad():
            entry = (list(tensors), state, key, compute())
        owner.__dict__[name] = entry
    return entry[3]
