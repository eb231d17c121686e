"""fvcore.nn, imported once without the FutureWarning that its import-time
``torch.jit.script`` calls (fvcore.nn.focal_loss) raise on every recent torch: a warning
about fvcore's code that the user can do nothing about. Only that import is quieted;
torch.jit.script called later (by the user or the project) still warns."""
import warnings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is", category=FutureWarning)
    import fvcore.nn as fvcore_nn
    from fvcore.nn.precise_bn import get_bn_modules, update_bn_stats

__all__ = ["fvcore_nn", "get_bn_modules", "update_bn_stats"]
