"""Training and inference loops: trainers, hooks, distributed launch, and the default
setup of the standard scripts."""
from .hooks import *  # noqa: F401,F403  (upstream exposes the hooks here as well)
from .hooks import __all__ as _hooks_all
from .launch import DEFAULT_TIMEOUT, launch
from .train_loop import AMPTrainer, HookBase, SimpleTrainer, TrainerBase

_DEFAULTS_NAMES = (
    "DefaultPredictor",
    "DefaultTrainer",
    "create_ddp_model",
    "default_argument_parser",
    "default_setup",
    "default_writers",
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "launch",
    "HookBase",
    "TrainerBase",
    "SimpleTrainer",
    "AMPTrainer",
    *_hooks_all,
    *_DEFAULTS_NAMES,
]


def __getattr__(name: str):
    # engine.defaults needs data, modeling and evaluation: import it on first use, so
    # that the trainers, hooks and launch work without pulling those in.
    if name in _DEFAULTS_NAMES:
        from . import defaults

        return getattr(defaults, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
