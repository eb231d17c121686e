"""ONNX export of detectron2 models through tracing (TracingAdapter + torch.onnx.export).

Upstream's ``export_onnx_model`` produced graphs with Caffe2-only operators; the graphs
made here use standard ONNX operators only, so that onnxruntime runs them.
"""
import io
from typing import Any, Callable, List, Optional, Sequence

import torch
from torch import nn

from .flatten import TracingAdapter

__all__ = ["export_onnx_model", "DEFAULT_ONNX_OPSET"]

# Opset 16 is the first whose RoiAlign has the "half_pixel" mode that ROIAlign(aligned=True)
# (every FPN model) needs to be exact; torchvision's exporter emulates it less exactly below.
DEFAULT_ONNX_OPSET = 17


def _rcnn_inference(model: nn.Module, inputs: List[dict]) -> Any:
    """GeneralizedRCNN outputs at the network's resolution (postprocessing pastes masks
    with data-dependent loops that do not trace)."""
    if hasattr(model, "roi_heads"):
        return model.inference(inputs, do_postprocess=False)
    return model(inputs)


def export_onnx_model(
    cfg: Any,
    model: nn.Module,
    inputs: Any,
    *,
    inference_func: Optional[Callable] = None,
    opset_version: int = DEFAULT_ONNX_OPSET,
    input_names: Sequence[str] = (),
    output_names: Sequence[str] = (),
):
    """Trace ``model`` on ``inputs`` and convert the trace to ONNX.

    Args:
        cfg: the model's config (kept for upstream's signature; unused).
        model: a detectron2 model in eval mode (weights loaded).
        inputs: sample inputs as the model takes them, e.g. ``[{"image": tensor}]``.
            Tracing records the control flow of these inputs: give an image on which
            the model detects something.
        inference_func: ``f(model, *inputs)``; by default R-CNN models run
            ``inference(inputs, do_postprocess=False)`` and others ``model(inputs)``.
        opset_version: the ONNX opset.

    Returns:
        ``(onnx.ModelProto, adapter)``: the model, whose inputs are
        ``adapter.flattened_inputs`` and whose outputs ``adapter.outputs_schema`` turns
        back into detectron2's format.
    """
    try:
        import onnx
    except ImportError as e:
        raise ImportError("export_onnx_model needs the 'onnx' package: pip install onnx onnxruntime") from e
    if model.training:
        raise AssertionError("export_onnx_model: the model must be in eval mode; call model.eval() first")
    if not isinstance(inputs, tuple):
        inputs = (inputs,)
    adapter = TracingAdapter(model, inputs, inference_func or _rcnn_inference)
    buffer = io.BytesIO()
    with torch.no_grad():
        traced = torch.jit.trace(adapter, adapter.flattened_inputs, check_trace=False)
        torch.onnx.export(
            traced,
            adapter.flattened_inputs,
            buffer,
            dynamo=False,  # the TorchScript-based exporter: the dynamo one cannot export these graphs
            opset_version=opset_version,
            input_names=list(input_names) or None,
            output_names=list(output_names) or None,
        )
    return onnx.load_from_string(buffer.getvalue()), adapter
