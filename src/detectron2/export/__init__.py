"""Deployment of detectron2 models: tracing (TracingAdapter), TorchScript scripting
(scripting_with_instances), ONNX export, and upstream's Caffe2 names (which raise)."""
import warnings

from .api import Caffe2Compatible, Caffe2Model, Caffe2Tracer, export_caffe2_model
from .flatten import TracingAdapter, flatten_to_tuple
from .onnx_export import export_onnx_model
from .torchscript import dump_torchscript_IR, scripting_with_instances

# The ONNX opset upstream tests its exports with.
STABLE_ONNX_OPSET_VERSION = 11


def add_export_config(cfg):
    """Deprecated upstream and a no-op there: returns ``cfg`` unchanged."""
    warnings.warn("add_export_config has been deprecated and behaves as no-op function.", DeprecationWarning)
    return cfg


__all__ = [k for k in globals().keys() if not k.startswith("_") and k != "warnings"]
