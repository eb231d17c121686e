"""detectron2-neo: an API-compatible Detectron2 core with matched, prebuilt CUDA ops."""

__version__ = "0.7.0"
