"""From registered dataset names (or a config) to training and inference data loaders."""
import itertools
import logging
import operator
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
import torch.utils.data as torchdata
from tabulate import tabulate
from termcolor import colored

from detectron2.config import configurable
from detectron2.structures import BoxMode
from detectron2.utils.comm import get_world_size
from detectron2.utils.env import seed_all_rng
from detectron2.utils.file_io import PathManager
from detectron2.utils.logger import _log_api_usage, log_first_n

from .catalog import DatasetCatalog, MetadataCatalog
from .common import AspectRatioGroupedDataset, DatasetFromList, MapDataset, ToIterableDataset
from .samplers import InferenceSampler, RandomSubsetTrainingSampler, RepeatFactorTrainingSampler, TrainingSampler

__all__ = [
    "build_batch_data_loader",
    "build_detection_train_loader",
    "build_detection_test_loader",
    "get_detection_dataset_dicts",
    "load_proposals_into_dataset",
    "print_instances_class_histogram",
]

logger = logging.getLogger(__name__)


def filter_images_with_only_crowd_annotations(dataset_dicts: List[Dict]) -> List[Dict]:
    """Drop images without any non-crowd annotation (nothing to learn from)."""
    num_before = len(dataset_dicts)

    def valid(anns: List[Dict]) -> bool:
        return any(ann.get("iscrowd", 0) == 0 for ann in anns)

    dataset_dicts = [x for x in dataset_dicts if valid(x["annotations"])]
    logger.info(f"Removed {num_before - len(dataset_dicts)} images with no usable annotations. {len(dataset_dicts)} images left.")
    return dataset_dicts


def filter_images_with_few_keypoints(dataset_dicts: List[Dict], min_keypoints_per_image: int) -> List[Dict]:
    """Drop images with fewer than ``min_keypoints_per_image`` visible keypoints."""
    num_before = len(dataset_dicts)

    def visible_keypoints_in_image(dic: Dict) -> int:
        annotations = dic["annotations"]
        # Visibility flags are every third number; > 0 means labelled.
        return sum((np.array(ann["keypoints"][2::3]) > 0).sum() for ann in annotations if "keypoints" in ann)

    dataset_dicts = [x for x in dataset_dicts if visible_keypoints_in_image(x) >= min_keypoints_per_image]
    logger.info(f"Removed {num_before - len(dataset_dicts)} images with fewer than {min_keypoints_per_image} keypoints.")
    return dataset_dicts


def load_proposals_into_dataset(dataset_dicts: List[Dict], proposal_file: str) -> List[Dict]:
    """Attach precomputed proposals to each image's dict.

    Args:
        proposal_file: a pickle of a dict with "ids", "boxes" (one Nx4 array per image),
            "objectness_logits" (one array of N per image) and optionally "bbox_mode"
            (default XYXY_ABS). The old key names "indexes" and "scores" are accepted.

    Returns:
        the same dicts with "proposal_boxes", "proposal_objectness_logits" and
        "proposal_bbox_mode" added.
    """
    logger.info(f"Loading proposals from: {proposal_file}")
    from detectron2.checkpoint.safe_load import load_pkl

    with PathManager.open(proposal_file, "rb") as f:
        # restricted unpickler (arrays and containers only): a pickle could run code; latin1
        # reads files written by python 2 too
        proposals = load_pkl(f, source=proposal_file)
    for old, new in (("indexes", "ids"), ("scores", "objectness_logits")):
        if old in proposals:
            proposals[new] = proposals.pop(old)
    # Ids are compared as strings: proposal files disagree on int vs str image ids.
    img_ids = {str(record["image_id"]) for record in dataset_dicts}
    id_to_index = {str(i): k for k, i in enumerate(proposals["ids"]) if str(i) in img_ids}
    bbox_mode = BoxMode(proposals["bbox_mode"]) if "bbox_mode" in proposals else BoxMode.XYXY_ABS
    for record in dataset_dicts:
        try:
            i = id_to_index[str(record["image_id"])]
        except KeyError as e:
            raise KeyError(f"{proposal_file} has no proposals for image_id {record['image_id']}") from e
        record["proposal_boxes"] = proposals["boxes"][i]
        record["proposal_objectness_logits"] = proposals["objectness_logits"][i]
        record["proposal_bbox_mode"] = bbox_mode
    return dataset_dicts


def print_instances_class_histogram(dataset_dicts: List[Dict], class_names: Sequence[str]) -> None:
    """Log a table of the number of (non-crowd) instances of each class."""
    num_classes = len(class_names)
    hist_bins = np.arange(num_classes + 1)
    histogram = np.zeros((num_classes,), dtype=int)
    for entry in dataset_dicts:
        classes = np.asarray([x["category_id"] for x in entry["annotations"] if not x.get("iscrowd", 0)], dtype=int)
        if len(classes):
            if classes.min() < 0:
                raise ValueError(f"Got an invalid category_id={classes.min()}")
            if classes.max() >= num_classes:
                raise ValueError(f"Got an invalid category_id={classes.max()} for a dataset of {num_classes} classes")
        histogram += np.histogram(classes, bins=hist_bins)[0]

    n_cols = min(6, len(class_names) * 2)

    def short_name(x: str) -> str:
        return x[:10] + ".." if len(x) > 13 else x  # keep the table narrow

    data = list(itertools.chain(*[[short_name(class_names[i]), int(v)] for i, v in enumerate(histogram)]))
    total = sum(data[1::2])
    data.extend([None] * (n_cols - (len(data) % n_cols)))
    if num_classes > 1:
        data.extend(["total", total])
    rows = itertools.zip_longest(*[data[i::n_cols] for i in range(n_cols)])
    table = tabulate(
        rows, headers=["category", "#instances"] * (n_cols // 2), tablefmt="pipe", numalign="left", stralign="center"
    )
    log_first_n(
        logging.INFO,
        f"Distribution of instances among all {num_classes} categories:\n" + colored(table, "cyan"),
        key="message",
    )


def _check_consistency(names: Sequence[str]) -> None:
    # Lives in detection_utils upstream; imported here so data.build does not need it at import.
    from .detection_utils import check_metadata_consistency

    check_metadata_consistency("thing_classes", names)


def get_detection_dataset_dicts(
    names: Union[str, Sequence[str]],
    filter_empty: bool = True,
    min_keypoints: int = 0,
    proposal_files: Optional[Sequence[str]] = None,
    check_consistency: bool = True,
) -> Union[List[Dict], torchdata.Dataset]:
    """Load and concatenate the dicts of registered datasets, for detection or segmentation.

    Args:
        names: dataset name(s).
        filter_empty: drop images with only crowd (or no) annotations.
        min_keypoints: drop images with fewer visible keypoints (0: keep all).
        proposal_files: one proposal file per dataset, loaded into its dicts.
        check_consistency: require the datasets to share thing_classes, and log the
            class histogram.

    Returns:
        list[dict]; or, when the registered functions return torch Datasets, that
        dataset (a ConcatDataset for several).
    """
    if isinstance(names, str):
        names = [names]
    if not names:
        raise ValueError("get_detection_dataset_dicts: names is empty")
    dataset_dicts = [DatasetCatalog.get(dataset_name) for dataset_name in names]

    if isinstance(dataset_dicts[0], torchdata.Dataset):
        if len(dataset_dicts) > 1:
            # ConcatDataset needs map-style datasets; an IterableDataset can only come alone.
            return torchdata.ConcatDataset(dataset_dicts)
        return dataset_dicts[0]

    for dataset_name, dicts in zip(names, dataset_dicts):
        if not len(dicts):
            raise ValueError(f"Dataset '{dataset_name}' is empty!")

    if proposal_files is not None:
        if len(names) != len(proposal_files):
            raise ValueError(f"{len(proposal_files)} proposal files given for {len(names)} datasets")
        dataset_dicts = [load_proposals_into_dataset(d, f) for d, f in zip(dataset_dicts, proposal_files)]

    dataset_dicts = list(itertools.chain.from_iterable(dataset_dicts))

    has_instances = "annotations" in dataset_dicts[0]
    if filter_empty and has_instances:
        dataset_dicts = filter_images_with_only_crowd_annotations(dataset_dicts)
    if min_keypoints > 0 and has_instances:
        dataset_dicts = filter_images_with_few_keypoints(dataset_dicts, min_keypoints)

    if check_consistency and has_instances:
        class_names = MetadataCatalog.get(names[0]).get("thing_classes")
        if class_names is not None:  # no class names (e.g. proposals only): nothing to check
            _check_consistency(names)
            print_instances_class_histogram(dataset_dicts, class_names)

    if not dataset_dicts:
        raise ValueError(f"No valid data found in {','.join(names)}.")
    return dataset_dicts


def trivial_batch_collator(batch: List[Any]) -> List[Any]:
    """A batch is the list of its elements, unchanged."""
    return batch


def worker_init_reset_seed(worker_id: int) -> None:
    """Give every DataLoader worker its own RNG seeds (numpy and python included)."""
    initial_seed = torch.initial_seed() % 2**31
    seed_all_rng(initial_seed + worker_id)


def _per_rank_batch_size(total_batch_size: Optional[int], single_gpu_batch_size: Optional[int]) -> int:
    if single_gpu_batch_size:
        if total_batch_size:
            raise ValueError("total_batch_size and single_gpu_batch_size are mutually incompatible; give only one.")
        return single_gpu_batch_size
    world_size = get_world_size()
    if not total_batch_size or total_batch_size <= 0 or total_batch_size % world_size != 0:
        raise ValueError(
            f"Total batch size ({total_batch_size}) must be divisible by the number of gpus ({world_size})."
        )
    return total_batch_size // world_size


def build_batch_data_loader(
    dataset: Union[torchdata.Dataset, torchdata.IterableDataset],
    sampler: Optional[torchdata.Sampler],
    total_batch_size: Optional[int],
    *,
    aspect_ratio_grouping: bool = False,
    num_workers: int = 0,
    collate_fn: Optional[Callable[[List[Any]], Any]] = None,
    drop_last: bool = True,
    single_gpu_batch_size: Optional[int] = None,
    prefetch_factor: Optional[int] = None,
    persistent_workers: bool = False,
    pin_memory: bool = False,
    seed: Optional[int] = None,
    **kwargs: Any,
) -> Any:
    """A loader of batches of ``total_batch_size / world_size`` elements per rank.

    Args:
        dataset: a map-style dataset (indexed through ``sampler``) or an IterableDataset
            (then ``sampler`` must be None).
        sampler: yields indices, normally infinite and sharded by rank.
        total_batch_size: the batch size over all ranks; must be divisible by the
            world size.
        single_gpu_batch_size: the batch size per rank instead (then
            total_batch_size must be 0 or None).
        aspect_ratio_grouping: batch landscape and portrait images separately.
        num_workers: DataLoader worker processes.
        collate_fn: applied to each batch (a list); default keeps the list.
        drop_last: drop the last incomplete batch (grouping requires it).
        prefetch_factor, persistent_workers, pin_memory, kwargs: passed to DataLoader.
        seed: seed of the DataLoader's generator (the base seed of its workers).

    Returns:
        an iterable of batches (by default, lists of mapped dataset elements).
    """
    batch_size = _per_rank_batch_size(total_batch_size, single_gpu_batch_size)

    if isinstance(dataset, torchdata.IterableDataset):
        if sampler is not None:
            raise ValueError("sampler must be None if dataset is IterableDataset")
    else:
        # One batch per worker chunk: each worker builds whole batches.
        dataset = ToIterableDataset(dataset, sampler, shard_chunk_size=batch_size)

    generator = None
    if seed is not None:
        generator = torch.Generator()
        generator.manual_seed(seed)
    loader_kwargs = dict(
        num_workers=num_workers,
        worker_init_fn=worker_init_reset_seed,
        persistent_workers=persistent_workers and num_workers > 0,
        pin_memory=pin_memory,
        generator=generator,
        **kwargs,
    )
    if num_workers > 0:
        loader_kwargs["prefetch_factor"] = 2 if prefetch_factor is None else prefetch_factor

    if aspect_ratio_grouping:
        if not drop_last:
            raise ValueError("Aspect ratio grouping will drop incomplete batches.")
        data_loader = torchdata.DataLoader(dataset, collate_fn=operator.itemgetter(0), **loader_kwargs)
        data_loader = AspectRatioGroupedDataset(data_loader, batch_size)
        if collate_fn is None:
            return data_loader
        return MapDataset(data_loader, collate_fn)
    return torchdata.DataLoader(
        dataset,
        batch_size=batch_size,
        drop_last=drop_last,
        collate_fn=trivial_batch_collator if collate_fn is None else collate_fn,
        **loader_kwargs,
    )


def _default_mapper(cfg, is_train: bool) -> Callable:
    # Imported here: the mapper pulls in transforms, which a plain data.build import does not need.
    from .dataset_mapper import DatasetMapper

    return DatasetMapper(cfg, is_train)


def _train_loader_from_config(cfg, mapper=None, *, dataset=None, sampler=None) -> Dict[str, Any]:
    if dataset is None:
        dataset = get_detection_dataset_dicts(
            cfg.DATASETS.TRAIN,
            filter_empty=cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS,
            min_keypoints=cfg.MODEL.ROI_KEYPOINT_HEAD.MIN_KEYPOINTS_PER_IMAGE if cfg.MODEL.KEYPOINT_ON else 0,
            proposal_files=cfg.DATASETS.PROPOSAL_FILES_TRAIN if cfg.MODEL.LOAD_PROPOSALS else None,
        )
        _log_api_usage("dataset." + cfg.DATASETS.TRAIN[0])
    if mapper is None:
        mapper = _default_mapper(cfg, True)
    if sampler is None:
        sampler = _train_sampler_from_config(cfg, dataset)
    return {
        "dataset": dataset,
        "sampler": sampler,
        "mapper": mapper,
        "total_batch_size": cfg.SOLVER.IMS_PER_BATCH,
        "aspect_ratio_grouping": cfg.DATALOADER.ASPECT_RATIO_GROUPING,
        "num_workers": cfg.DATALOADER.NUM_WORKERS,
    }


def _train_sampler_from_config(cfg, dataset) -> Optional[torchdata.Sampler]:
    sampler_name = cfg.DATALOADER.SAMPLER_TRAIN
    logger.info(f"Using training sampler {sampler_name}")
    if isinstance(dataset, torchdata.IterableDataset):
        logger.info("Not using any sampler since the dataset is IterableDataset.")
        return None
    if sampler_name == "TrainingSampler":
        return TrainingSampler(len(dataset))
    if sampler_name == "RepeatFactorTrainingSampler":
        repeat_factors = RepeatFactorTrainingSampler.repeat_factors_from_category_frequency(
            dataset, cfg.DATALOADER.REPEAT_THRESHOLD, sqrt=cfg.DATALOADER.REPEAT_SQRT
        )
        return RepeatFactorTrainingSampler(repeat_factors)
    if sampler_name == "RandomSubsetTrainingSampler":
        ratio = cfg.DATALOADER.get("RANDOM_SUBSET_RATIO")
        if ratio is None:
            raise ValueError("SAMPLER_TRAIN=RandomSubsetTrainingSampler needs cfg.DATALOADER.RANDOM_SUBSET_RATIO")
        return RandomSubsetTrainingSampler(len(dataset), ratio)
    raise ValueError(f"Unknown training sampler: {sampler_name}")


def _mapped_dataset_and_sampler(dataset, mapper, sampler, default_sampler: Callable[[int], torchdata.Sampler]):
    """The dataset as a torch Dataset mapped by ``mapper``, and its sampler (``default_sampler``
    by default; None for an IterableDataset, which samples itself)."""
    if isinstance(dataset, list):
        dataset = DatasetFromList(dataset, copy=False)
    if mapper is not None:
        dataset = MapDataset(dataset, mapper)
    if isinstance(dataset, torchdata.IterableDataset):
        if sampler is not None:
            raise ValueError("sampler must be None if dataset is IterableDataset")
        return dataset, None
    if sampler is None:
        sampler = default_sampler(len(dataset))
    if not isinstance(sampler, torchdata.Sampler):
        raise TypeError(f"Expect a Sampler but got {type(sampler)}")
    return dataset, sampler


@configurable(from_config=_train_loader_from_config)
def build_detection_train_loader(
    dataset: Union[List[Dict], torchdata.Dataset],
    *,
    mapper: Optional[Callable],
    sampler: Optional[torchdata.Sampler] = None,
    total_batch_size: int,
    aspect_ratio_grouping: bool = True,
    num_workers: int = 0,
    collate_fn: Optional[Callable] = None,
    **kwargs: Any,
) -> Any:
    """An infinite loader of training batches.

    Usable with a config, ``build_detection_train_loader(cfg, mapper=...)`` (from
    DATASETS.TRAIN, DATALOADER.*, SOLVER.IMS_PER_BATCH; DatasetMapper(cfg, True) when
    no mapper is given), or with explicit arguments:

    Args:
        dataset: a list of dataset dicts, or a map-style / iterable torch Dataset.
        mapper: called on each element (returns the model's input); None: no mapping.
        sampler: indices of a map-style dataset; default TrainingSampler (infinite,
            shuffled, sharded by rank).
        total_batch_size: batch size over all ranks.
        aspect_ratio_grouping: batch landscape and portrait images separately.
        num_workers: DataLoader worker processes.
        collate_fn, kwargs: passed to build_batch_data_loader.

    Returns:
        an iterable of lists of ``total_batch_size / world_size`` mapped elements.
    """
    dataset, sampler = _mapped_dataset_and_sampler(dataset, mapper, sampler, TrainingSampler)
    return build_batch_data_loader(
        dataset,
        sampler,
        total_batch_size,
        aspect_ratio_grouping=aspect_ratio_grouping,
        num_workers=num_workers,
        collate_fn=collate_fn,
        **kwargs,
    )


def _test_loader_from_config(cfg, dataset_name, mapper=None) -> Dict[str, Any]:
    if isinstance(dataset_name, str):
        dataset_name = [dataset_name]
    proposal_files = None
    if cfg.MODEL.LOAD_PROPOSALS:
        test_names = list(cfg.DATASETS.TEST)
        proposal_files = [cfg.DATASETS.PROPOSAL_FILES_TEST[test_names.index(x)] for x in dataset_name]
    dataset = get_detection_dataset_dicts(dataset_name, filter_empty=False, proposal_files=proposal_files)
    if mapper is None:
        mapper = _default_mapper(cfg, False)
    return {
        "dataset": dataset,
        "mapper": mapper,
        "num_workers": cfg.DATALOADER.NUM_WORKERS,
        "sampler": InferenceSampler(len(dataset)) if not isinstance(dataset, torchdata.IterableDataset) else None,
    }


@configurable(from_config=_test_loader_from_config)
def build_detection_test_loader(
    dataset: Union[List[Dict], torchdata.Dataset],
    *,
    mapper: Optional[Callable],
    sampler: Optional[torchdata.Sampler] = None,
    batch_size: int = 1,
    num_workers: int = 0,
    collate_fn: Optional[Callable[[List[Any]], Any]] = None,
) -> torchdata.DataLoader:
    """A finite loader over a dataset for inference: by default every element once,
    split into contiguous shards over ranks (InferenceSampler), in batches of
    ``batch_size`` (per rank), without dropping the last batch.

    Usable as ``build_detection_test_loader(cfg, dataset_name, mapper=...)`` too (the
    config supplies proposals files, NUM_WORKERS and DatasetMapper(cfg, False)).

    Returns:
        a DataLoader yielding lists of mapped elements.
    """
    dataset, sampler = _mapped_dataset_and_sampler(dataset, mapper, sampler, InferenceSampler)
    return torchdata.DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        drop_last=False,
        num_workers=num_workers,
        collate_fn=trivial_batch_collator if collate_fn is None else collate_fn,
    )
