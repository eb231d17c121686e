"""Data loading: datasets and catalogs, mappers, transforms and augmentations."""
from . import transforms  # isort:skip
from . import detection_utils
from .dataset_mapper import DatasetMapper

__all__ = [k for k in globals().keys() if not k.startswith("_")]
