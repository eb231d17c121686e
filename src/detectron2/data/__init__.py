"""Data loading: datasets and catalogs, mappers, transforms and augmentations, samplers, loaders."""
from . import transforms  # isort:skip
from . import detection_utils
from .build import build_batch_data_loader
from .build import build_detection_test_loader
from .build import build_detection_train_loader
from .build import get_detection_dataset_dicts
from .build import load_proposals_into_dataset
from .build import print_instances_class_histogram
from .catalog import DatasetCatalog, Metadata, MetadataCatalog
from .common import DatasetFromList, MapDataset, ToIterableDataset
from .dataset_mapper import DatasetMapper

# Imported for their side effect too: the builtin datasets get registered.
from . import datasets  # isort:skip
from . import samplers  # isort:skip

__all__ = [k for k in globals().keys() if not k.startswith("_")]
