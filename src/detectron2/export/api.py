"""Upstream's Caffe2 export API. Caffe2 was removed from PyTorch (2.1 dropped its last
pieces), so these names remain only to fail with a message that says what to use instead."""
from typing import Any, NoReturn

__all__ = ["Caffe2Tracer", "Caffe2Model", "export_caffe2_model", "Caffe2Compatible", "CAFFE2_REMOVED_MESSAGE"]

CAFFE2_REMOVED_MESSAGE = (
    "{name}: Caffe2 export is not available because Caffe2 is no longer part of PyTorch "
    "(it was removed in PyTorch 2.x, and detectron2's Caffe2 export relied on its operators). "
    "Use instead: detectron2.export.TracingAdapter with torch.jit.trace, "
    "detectron2.export.scripting_with_instances (TorchScript), or "
    "detectron2.export.export_onnx_model / TracingAdapter + torch.onnx.export (ONNX, runs in onnxruntime)."
)


class Caffe2Unavailable(ImportError):
    """Raised by every Caffe2 export entry point (an ImportError, as upstream raises
    when caffe2 cannot be imported)."""


def _caffe2_gone(name: str) -> NoReturn:
    raise Caffe2Unavailable(CAFFE2_REMOVED_MESSAGE.format(name=name))


class Caffe2Tracer:
    """Upstream's Caffe2-style tracer; constructing one raises :class:`Caffe2Unavailable`."""

    def __init__(self, cfg: Any, model: Any, inputs: Any):
        _caffe2_gone("Caffe2Tracer")


class Caffe2Model:
    """Upstream's wrapper of a Caffe2 protobuf model; constructing or loading one raises
    :class:`Caffe2Unavailable`."""

    def __init__(self, predict_net: Any, init_net: Any):
        _caffe2_gone("Caffe2Model")

    @staticmethod
    def load_protobuf(dir: str) -> "Caffe2Model":
        _caffe2_gone("Caffe2Model.load_protobuf")


class Caffe2Compatible:
    """Upstream's mixin of Caffe2-exportable modules; constructing one raises."""

    def __init__(self, *args: Any, **kwargs: Any):
        _caffe2_gone("Caffe2Compatible")


def export_caffe2_model(cfg: Any, model: Any, inputs: Any) -> NoReturn:
    """Upstream exported a model to Caffe2 protobuf; raises :class:`Caffe2Unavailable`."""
    _caffe2_gone("export_caffe2_model")
