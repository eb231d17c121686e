"""Helpers for test suites (ours and downstream ones): small models, sample inputs,
comparisons of Instances, TorchScript/ONNX round trips and skip decorators."""
import io
import os
import tempfile
import unittest
from typing import Any, Callable

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from detectron2.utils.torch_version_utils import min_torch_version

__all__ = [
    "get_model_no_weights",
    "random_boxes",
    "get_sample_coco_image",
    "convert_scripted_instances",
    "assert_instances_allclose",
    "reload_script_model",
    "reload_lazy_config",
    "min_torch_version",
    "has_dynamic_axes",
    "register_custom_op_onnx_export",
    "unregister_custom_op_onnx_export",
    "skipIfOnCPUCI",
    "skip_on_cpu_ci",
    "skipIfUnsupportedMinOpsetVersion",
    "skipIfUnsupportedMinTorchVersion",
    "DispatchCounter",
]


def get_model_no_weights(config_path: str) -> torch.nn.Module:
    """Like ``model_zoo.get`` but without loading any weights (not even pretrained
    ones); on a machine without CUDA the model is built on the CPU."""
    from detectron2 import model_zoo  # the zoo sits above utils in the layer stack
    from detectron2.config import CfgNode, instantiate
    from detectron2.modeling import build_model

    cfg = model_zoo.get_config(config_path)
    if isinstance(cfg, CfgNode):
        if not torch.cuda.is_available():
            cfg.MODEL.DEVICE = "cpu"
        return build_model(cfg)
    return instantiate(cfg.model)


# The image upstream's tests fall back to when the COCO val set is not on disk.
_SAMPLE_COCO_IMAGE_URL = "http://images.cocodataset.org/train2017/000000000009.jpg"


def get_sample_coco_image(tensor: bool = True):
    """A COCO image in BGR: a (3, H, W) uint8 tensor, or an (H, W, 3) array when
    ``tensor`` is False.

    The first image of the registered "coco_2017_val_100" is used when it exists on
    disk, else COCO's train2017/000000000009.jpg is downloaded (cached by PathManager).
    Raises FileNotFoundError naming both places when neither can be read (offline).
    """
    from detectron2.data import DatasetCatalog  # data sits above utils in the layer stack
    from detectron2.data.detection_utils import read_image
    from detectron2.utils.file_io import PathManager

    file_name = None
    try:
        candidate = DatasetCatalog.get("coco_2017_val_100")[0]["file_name"]
        if PathManager.exists(candidate):
            file_name = candidate
    except (IOError, KeyError, IndexError):  # dataset files absent or not registered
        pass
    if file_name is None:
        try:
            file_name = PathManager.get_local_path(_SAMPLE_COCO_IMAGE_URL)
        except Exception as e:  # no network: say what was tried
            raise FileNotFoundError(
                "get_sample_coco_image: the COCO dataset 'coco_2017_val_100' is not under "
                "$DETECTRON2_DATASETS (default ./datasets) and downloading "
                f"{_SAMPLE_COCO_IMAGE_URL} failed ({type(e).__name__}: {e})"
            ) from e
    image = read_image(file_name, format="BGR")
    if tensor:
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
    return image


def convert_scripted_instances(instances: Any):
    """A regular :class:`Instances` with the fields that are set in ``instances``, an
    Instances returned by a model scripted with ``scripting_with_instances``."""
    from detectron2.structures import Instances

    if not hasattr(instances, "image_size") or not hasattr(instances, "_field_names"):
        raise TypeError(
            f"convert_scripted_instances: expected a scripted Instances object, got {type(instances)}"
        )
    ret = Instances(instances.image_size)
    for name in instances._field_names:
        val = getattr(instances, "_" + name, None)
        if val is not None:
            ret.set(name, val)
    return ret


def reload_script_model(module: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    """Save a TorchScript module to memory and load it back (checks serialization)."""
    buffer = io.BytesIO()
    torch.jit.save(module, buffer)
    buffer.seek(0)
    return torch.jit.load(buffer)


def reload_lazy_config(cfg: Any) -> Any:
    """Save a lazy config with ``LazyConfig.save`` and load it back."""
    from detectron2.config import LazyConfig

    with tempfile.TemporaryDirectory(prefix="detectron2") as d:
        fname = os.path.join(d, "d2_cfg_test.yaml")
        LazyConfig.save(cfg, fname)
        return LazyConfig.load(fname)


def has_dynamic_axes(onnx_model: Any) -> bool:
    """True when no input or output dimension of the ONNX model is a fixed number."""
    values = list(onnx_model.graph.input) + list(onnx_model.graph.output)
    return all(not dim.dim_param.isnumeric() for v in values for dim in v.type.tensor_type.shape.dim)


def register_custom_op_onnx_export(opname: str, symbolic_fn: Callable, opset_version: int, min_version: str) -> None:
    """Register ``symbolic_fn`` as the ONNX symbolic of ``opname`` for ``opset_version``,
    only when torch is older than ``min_version`` (newer torch has its own). Unregister
    it with :func:`unregister_custom_op_onnx_export` afterwards."""
    if min_torch_version(min_version):
        return
    from torch.onnx import register_custom_op_symbolic

    register_custom_op_symbolic(opname, symbolic_fn, opset_version)


def unregister_custom_op_onnx_export(opname: str, opset_version: int, min_version: str) -> None:
    """Undo :func:`register_custom_op_onnx_export` (a no-op when torch >= min_version)."""
    if min_torch_version(min_version):
        return
    from torch.onnx import unregister_custom_op_symbolic

    unregister_custom_op_symbolic(opname, opset_version)


skipIfOnCPUCI = unittest.skipIf(
    bool(os.environ.get("CI")) and not torch.cuda.is_available(),
    "The test is too slow on CPUs and runs in the GPU CI jobs.",
)
skip_on_cpu_ci = skipIfOnCPUCI


def skipIfUnsupportedMinOpsetVersion(min_opset_version: int, current_opset_version: int = None) -> Callable:
    """Skip a test method when its ``self.opset_version`` (or ``current_opset_version``)
    is below ``min_opset_version``."""

    def decorator(func):
        def wrapper(self):
            opset = getattr(self, "opset_version", current_opset_version)
            if opset is None or opset < min_opset_version:
                raise unittest.SkipTest(f"Unsupported opset_version {opset}, required is {min_opset_version}")
            return func(self)

        wrapper.__name__ = func.__name__
        wrapper.__doc__ = func.__doc__
        return wrapper

    return decorator


def skipIfUnsupportedMinTorchVersion(min_version: str) -> Callable:
    """Skip a test when torch is older than ``min_version``."""
    reason = f"module 'torch' has __version__ {torch.__version__}, required is: {min_version}"
    return unittest.skipIf(not min_torch_version(min_version), reason)


def random_boxes(num_boxes: int, max_coord: int = 100, device="cpu") -> torch.Tensor:
    """``num_boxes`` random valid XYXY boxes (x0 < x1, y0 < y1) with coordinates in
    [1, max_coord], as a float32 (num_boxes, 4) tensor on ``device``."""
    # Top-left corners and sizes each span at most half of the range, so x1 <= max_coord.
    boxes = torch.rand(num_boxes, 4, device=device) * (max_coord * 0.5)
    boxes.clamp_(min=1.0)  # sizes >= 1: no degenerate boxes
    boxes[:, 2:] += boxes[:, :2]
    return boxes


def _as_tensor(value: Any):
    """The tensor behind a structure (Boxes, RotatedBoxes, ROIMasks, BitMasks...) or
    the tensor itself; None when the value is neither."""
    if isinstance(value, torch.Tensor):
        return value
    inner = getattr(value, "tensor", None)
    return inner if isinstance(inner, torch.Tensor) else None


def assert_instances_allclose(input, other, *, rtol: float = 1e-5, msg: str = "", size_as_tensor: bool = False) -> None:
    """Assert that two Instances have the same image size, the same fields and close values.

    Args:
        rtol: relative tolerance. Box-like fields (structures holding a ``.tensor``,
            whose coordinates are O(100)) use an absolute tolerance of ``100 * rtol``;
            float tensors use ``rtol`` times their largest magnitude; other tensors
            must be equal.
        msg: prefix of the assertion message.
        size_as_tensor: compare image sizes as tensors (they are tensors in traced or
            scripted models).
    """
    msg = msg.rstrip() + " " if msg else "Two Instances are different! "
    size_msg = msg + f"image_size is {input.image_size} vs. {other.image_size}!"
    if size_as_tensor:
        same_size = torch.equal(torch.as_tensor(input.image_size), torch.as_tensor(other.image_size))
    else:
        same_size = input.image_size == other.image_size
    assert same_size, size_msg

    fields = sorted(input.get_fields().keys())
    fields_other = sorted(other.get_fields().keys())
    assert fields == fields_other, msg + f"Fields are {fields} vs {fields_other}!"

    for f in fields:
        val1, val2 = input.get(f), other.get(f)
        if isinstance(val1, torch.Tensor):
            if not isinstance(val2, torch.Tensor):
                raise AssertionError(msg + f"Field {f} is a Tensor vs. {type(val2)}!")
            assert val1.shape == val2.shape, msg + f"Field {f} has shape {tuple(val1.shape)} vs {tuple(val2.shape)}!"
            if val1.dtype.is_floating_point:
                mag = torch.abs(val1).max().item() if val1.numel() else 0.0
                ok = torch.allclose(val1, val2, rtol=0.0, atol=mag * rtol)
                assert ok, msg + f"Field {f} differs too much!"
            else:
                assert torch.equal(val1, val2), msg + f"Field {f} is different!"
            continue
        t1, t2 = _as_tensor(val1), _as_tensor(val2)
        if t1 is None:
            raise ValueError(f"Don't know how to compare field {f} of type {type(val1)}")
        if type(val1) is not type(val2) or t2 is None:
            raise AssertionError(msg + f"Field {f} is a {type(val1)} vs. {type(val2)}!")
        assert t1.shape == t2.shape, msg + f"Field {f} has shape {tuple(t1.shape)} vs {tuple(t2.shape)}!"
        assert torch.allclose(t1.float(), t2.float(), rtol=0.0, atol=100 * rtol), msg + f"Field {f} differs too much!"


class DispatchCounter(TorchDispatchMode):
    """Counts the aten ops dispatched while active (``ops``), and those among them that
    make the host wait for a GPU (``syncs``: nonzero, item, ...): the host-side work of a
    step. The same code paths run on the CPU, where they are cheap but still counted."""

    SYNC_OPS = ("aten.nonzero.", "aten._local_scalar_dense.", "aten.is_nonzero.")

    def __init__(self):
        super().__init__()
        self.ops = self.syncs = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops += 1
        self.syncs += str(func).startswith(self.SYNC_OPS)
        return func(*args, **(kwargs or {}))
