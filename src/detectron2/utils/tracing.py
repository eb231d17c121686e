"""Helpers for code that must stay traceable with torch.fx and scriptable with TorchScript."""
import torch

try:  # newer torch: the plain name also answers true under torch.export and warns about it
    from torch.fx._symbolic_trace import is_fx_symbolic_tracing as _torch_is_fx_tracing
except ImportError:  # older torch
    from torch.fx._symbolic_trace import is_fx_tracing as _torch_is_fx_tracing

__all__ = ["is_fx_tracing", "assert_fx_safe"]


def is_fx_tracing() -> bool:
    """Whether torch.fx symbolic tracing is running (always False under TorchScript)."""
    if torch.jit.is_scripting():
        return False
    return _torch_is_fx_tracing()


def assert_fx_safe(condition: bool, message: str) -> torch.Tensor:
    """An ``assert`` that can sit in code traced by torch.fx.

    While fx-tracing (or scripting) the condition may be a Proxy, so the check is skipped
    and a zeros(1) tensor is returned. Otherwise the condition (a bool or a one-element
    tensor) is evaluated and an AssertionError with ``message`` raised when it is false;
    ones(1) is returned when it holds.
    """
    if torch.jit.is_scripting() or is_fx_tracing():
        return torch.zeros(1)
    if isinstance(condition, torch.Tensor):
        condition = bool(condition.item())
    torch._assert(condition, message)
    return torch.ones(1)
