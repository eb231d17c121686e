"""Saving and loading models: fvcore's Checkpointer / PeriodicCheckpointer, and the
DetectionCheckpointer that also reads Detectron1 / Caffe2 and pycls files."""
from fvcore.common.checkpoint import Checkpointer, PeriodicCheckpointer

from . import c2_model_loading as c2_model_loading  # noqa: F401 (upstream exposes the module)
from .catalog import ModelCatalog
from .detection_checkpoint import DetectionCheckpointer

__all__ = ["Checkpointer", "PeriodicCheckpointer", "DetectionCheckpointer"]
