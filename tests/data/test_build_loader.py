import importlib
import itertools
import logging
import pickle
import sys
import types

import numpy as np
import pytest
import torch.utils.data as torchdata

from detectron2.config import get_cfg
from detectron2.data import (
    DatasetCatalog,
    DatasetFromList,
    MapDataset,
    MetadataCatalog,
    ToIterableDataset,
    build_batch_data_loader,
    build_detection_test_loader,
    build_detection_train_loader,
    get_detection_dataset_dicts,
    load_proposals_into_dataset,
    print_instances_class_histogram,
)
from detectron2.data.common import AspectRatioGroupedDataset, NumpySerializedList, set_default_dataset_from_list_serialize_method
from detectron2.data.samplers import InferenceSampler, TrainingSampler
from detectron2.structures import BoxMode


def _dicts(n, width=lambda i: 40 if i % 2 else 20, annotations=None):
    out = []
    for i in range(n):
        anns = [{"bbox": [0, 0, 5, 5], "bbox_mode": BoxMode.XYWH_ABS, "category_id": i % 2, "iscrowd": 0}]
        out.append({"image_id": i, "file_name": f"{i}.jpg", "width": width(i), "height": 30,
                    "annotations": anns if annotations is None else annotations(i)})
    return out


@pytest.fixture
def fake_detection_utils(monkeypatch):
    """detection_utils (check_metadata_consistency) is another engineer's module: when it
    is not in this tree, stand in a minimal version with the same contract."""
    try:
        importlib.import_module("detectron2.data.detection_utils")
        return
    except ImportError:
        pass
    fake = types.ModuleType("detectron2.data.detection_utils")

    def check_metadata_consistency(key, dataset_names):
        entries = [getattr(MetadataCatalog.get(d), key) for d in dataset_names]
        for name, entry in zip(dataset_names, entries):
            if entry != entries[0]:
                raise ValueError(f"Metadata '{key}' for dataset '{name}' is '{entry}', unlike '{dataset_names[0]}'")

    fake.check_metadata_consistency = check_metadata_consistency
    monkeypatch.setitem(sys.modules, "detectron2.data.detection_utils", fake)


@pytest.fixture
def registered():
    names = []

    def register(name, dicts, **meta):
        DatasetCatalog.register(name, lambda: dicts)
        MetadataCatalog.get(name).set(**meta)
        names.append(name)
        return name

    yield register
    for n in names:
        DatasetCatalog.remove(n)
        MetadataCatalog.remove(n)


# ---- common ----------------------------------------------------------------------------


@pytest.mark.parametrize("serialize", [True, False, NumpySerializedList])
def test_dataset_from_list(serialize):
    lst = [{"a": i, "b": [i] * 3} for i in range(5)]
    ds = DatasetFromList(lst, copy=True, serialize=serialize)
    assert len(ds) == 5 and ds[3] == {"a": 3, "b": [3, 3, 3]} and ds[-1]["a"] == 4
    ds[2]["a"] = 100  # callers may modify what they get
    assert ds[2]["a"] == 2
    assert pickle.loads(pickle.dumps(ds))[4] == lst[4]
    with pytest.raises(IndexError):
        ds[5]
    with set_default_dataset_from_list_serialize_method(NumpySerializedList):
        assert isinstance(DatasetFromList(lst)._lst, NumpySerializedList)
    empty = DatasetFromList([], serialize=serialize)
    assert len(empty) == 0


def test_map_dataset_retries_on_none(caplog):
    ds = MapDataset(DatasetFromList(list(range(10))), lambda x: x if x % 3 == 0 else None)
    assert ds[3] == 3
    with caplog.at_level(logging.WARNING):
        values = [ds[1] for _ in range(5)]
    assert all(v % 3 == 0 for v in values)  # replaced by elements that map fine
    assert pickle.loads(pickle.dumps(ds))[6] == 6  # the lambda pickles (for worker processes)
    with pytest.raises(RuntimeError, match="every element"):
        MapDataset(DatasetFromList([1, 2]), lambda x: None)[0]


def test_map_iterable_dataset_skips_none():
    it = ToIterableDataset(DatasetFromList(list(range(6))), InferenceSampler(6))
    mapped = MapDataset(it, lambda x: None if x == 2 else x * 10)
    assert isinstance(mapped, torchdata.IterableDataset)
    assert list(mapped) == [0, 10, 30, 40, 50]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_to_iterable_dataset_shards_workers(num_workers):
    ds = ToIterableDataset(DatasetFromList(list(range(23))), InferenceSampler(23), shard_chunk_size=4)
    loader = torchdata.DataLoader(ds, batch_size=None, num_workers=num_workers)
    assert sorted(loader) == list(range(23))  # every element once, whatever the workers
    with pytest.raises(TypeError, match="Sampler"):
        ToIterableDataset(DatasetFromList([1]), [0])


def test_aspect_ratio_grouping():
    data = _dicts(9, width=lambda i: [50, 10, 50, 50, 10, 10, 10, 50, 50][i])
    batches = list(AspectRatioGroupedDataset(data, 2))
    assert [[d["image_id"] for d in b] for b in batches] == [[0, 2], [1, 4], [5, 6], [3, 7]]  # 8 held back


# ---- dataset dicts ---------------------------------------------------------------------


def test_get_detection_dataset_dicts_filters_and_concat(registered, fake_detection_utils, caplog):
    a = registered("test_build_a", _dicts(4, annotations=lambda i: [] if i == 0 else [
        {"bbox": [0, 0, 1, 1], "bbox_mode": BoxMode.XYWH_ABS, "category_id": 1, "iscrowd": int(i == 1),
         "keypoints": [1, 1, 2, 2, 2, 0 if i == 2 else 2]}]), thing_classes=["x", "y"])
    b = registered("test_build_b", _dicts(2), thing_classes=["x", "y"])
    with caplog.at_level(logging.INFO, logger="detectron2"):
        dicts = get_detection_dataset_dicts([a, b])
    assert [d["image_id"] for d in dicts] == [2, 3, 0, 1]  # images 0 (empty) and 1 (crowd only) of a dropped
    assert [d["image_id"] for d in get_detection_dataset_dicts([a, b], filter_empty=False)] == [0, 1, 2, 3, 0, 1]
    assert [d["image_id"] for d in get_detection_dataset_dicts(a, min_keypoints=2)] == [3]
    c = registered("test_build_c", _dicts(1), thing_classes=["x", "z"])
    with pytest.raises(ValueError, match="thing_classes"):
        get_detection_dataset_dicts([a, c])
    assert len(get_detection_dataset_dicts([a, c], check_consistency=False)) == 3
    empty = registered("test_build_empty", [])
    with pytest.raises(ValueError, match="is empty"):
        get_detection_dataset_dicts(empty)
    no_valid = registered("test_build_novalid", _dicts(1, annotations=lambda i: []))
    with pytest.raises(ValueError, match="No valid data"):
        get_detection_dataset_dicts(no_valid)


def test_get_detection_dataset_dicts_torch_datasets(registered):
    a = registered("test_build_ta", DatasetFromList([1, 2]))
    b = registered("test_build_tb", DatasetFromList([3]))
    assert isinstance(get_detection_dataset_dicts(a), DatasetFromList)
    concat = get_detection_dataset_dicts([a, b])
    assert isinstance(concat, torchdata.ConcatDataset) and [concat[i] for i in range(3)] == [1, 2, 3]


def test_print_instances_class_histogram(caplog):
    dicts = _dicts(5) + _dicts(1, annotations=lambda i: [{"category_id": 2, "iscrowd": 1}])
    with caplog.at_level(logging.INFO):
        print_instances_class_histogram(dicts, ["cat", "dog", "a_very_long_class_name"])
    text = caplog.text
    assert "Distribution of instances among all 3 categories" in text
    assert "cat" in text and "total" in text and "a_very_lon.." in text
    counts = [int(x) for x in text.replace("|", " ").split() if x.isdigit()]
    assert 3 in counts and 2 in counts and 5 in counts  # cat, dog, total (the crowd is not counted)
    with pytest.raises(ValueError, match="category_id"):
        print_instances_class_histogram(_dicts(2), ["only_one"])


def test_load_proposals_into_dataset(tmp_path):
    boxes = [np.array([[0, 0, 1, 1.0]]), np.array([[1, 1, 2, 2.0], [0, 0, 3, 3.0]])]
    path = tmp_path / "props.pkl"
    path.write_bytes(pickle.dumps({"indexes": [5, "7"], "boxes": boxes, "scores": [np.ones(1), np.zeros(2)],
                                   "bbox_mode": BoxMode.XYWH_ABS}))
    dicts = load_proposals_into_dataset([{"image_id": "7"}, {"image_id": 5}], str(path))
    assert dicts[0]["proposal_boxes"].shape == (2, 4) and dicts[1]["proposal_boxes"].shape == (1, 4)
    assert dicts[0]["proposal_objectness_logits"].tolist() == [0, 0]
    assert dicts[0]["proposal_bbox_mode"] == BoxMode.XYWH_ABS
    with pytest.raises(KeyError, match="image_id 9"):
        load_proposals_into_dataset([{"image_id": 9}], str(path))


# ---- loaders ---------------------------------------------------------------------------


def _mapper(d):
    # A stand-in for DatasetMapper: any picklable function of a dataset dict.
    return {"image_id": d["image_id"], "width": d["width"], "height": d["height"], "rand": np.random.rand()}


@pytest.mark.parametrize("num_workers", [0, 2])
def test_train_loader_explicit(num_workers):
    loader = build_detection_train_loader(
        _dicts(10), mapper=_mapper, sampler=TrainingSampler(10, seed=0), total_batch_size=4,
        aspect_ratio_grouping=False, num_workers=num_workers,
    )
    batches = list(itertools.islice(loader, 5))
    assert all(len(b) == 4 for b in batches)
    ids = [d["image_id"] for b in batches for d in b]
    assert sorted(ids[:10]) == list(range(10)) or num_workers > 0  # one epoch first (single process)
    assert set(ids) == set(range(10))
    if num_workers:
        # workers are seeded differently, so their random streams differ
        assert len({round(d["rand"], 12) for b in batches for d in b}) == 20


@pytest.mark.parametrize("num_workers", [0, 2])
def test_train_loader_aspect_grouping(num_workers):
    loader = build_detection_train_loader(
        _dicts(12), mapper=_mapper, total_batch_size=3, aspect_ratio_grouping=True, num_workers=num_workers
    )
    for batch in itertools.islice(loader, 6):
        assert len(batch) == 3
        assert len({d["width"] > d["height"] for d in batch}) == 1


def test_train_loader_collate_and_errors():
    loader = build_detection_train_loader(
        _dicts(6), mapper=_mapper, total_batch_size=2, aspect_ratio_grouping=True, collate_fn=len
    )
    assert next(iter(loader)) == 2
    with pytest.raises(ValueError, match="divisible"):
        build_detection_train_loader(_dicts(6), mapper=_mapper, total_batch_size=0)
    with pytest.raises(TypeError, match="Sampler"):
        build_detection_train_loader(_dicts(6), mapper=_mapper, sampler=[0, 1], total_batch_size=2)
    it = ToIterableDataset(DatasetFromList(_dicts(4)), InferenceSampler(4))
    with pytest.raises(ValueError, match="IterableDataset"):
        build_batch_data_loader(it, TrainingSampler(4), 2)
    assert len(next(iter(build_batch_data_loader(it, None, 2)))) == 2
    assert len(next(iter(build_batch_data_loader(it, None, 0, single_gpu_batch_size=3)))) == 3
    with pytest.raises(ValueError, match="incompatible"):
        build_batch_data_loader(it, None, 2, single_gpu_batch_size=3)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_train_loader_from_cfg(registered, fake_detection_utils, num_workers):
    name = registered("test_build_cfg_train", _dicts(8), thing_classes=["x", "y"])
    cfg = get_cfg()
    cfg.DATASETS.TRAIN = (name,)
    cfg.SOLVER.IMS_PER_BATCH = 2
    cfg.DATALOADER.NUM_WORKERS = num_workers
    cfg.DATALOADER.SAMPLER_TRAIN = "RepeatFactorTrainingSampler"
    cfg.DATALOADER.REPEAT_THRESHOLD = 0.5
    loader = build_detection_train_loader(cfg, mapper=_mapper)
    for batch in itertools.islice(loader, 4):
        assert len(batch) == 2 and len({d["width"] > d["height"] for d in batch}) == 1
    cfg.DATALOADER.SAMPLER_TRAIN = "NoSuchSampler"
    with pytest.raises(ValueError, match="Unknown training sampler"):
        build_detection_train_loader(cfg, mapper=_mapper)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_test_loader(registered, fake_detection_utils, num_workers):
    name = registered("test_build_cfg_test", _dicts(7, annotations=lambda i: []), thing_classes=["x", "y"])
    cfg = get_cfg()
    cfg.DATALOADER.NUM_WORKERS = num_workers
    loader = build_detection_test_loader(cfg, name, mapper=_mapper)
    batches = list(loader)
    assert [b[0]["image_id"] for b in batches] == list(range(7))  # nothing filtered, in order, once
    assert all(len(b) == 1 for b in batches)
    loader = build_detection_test_loader(_dicts(5), mapper=_mapper, batch_size=2, num_workers=num_workers)
    assert [len(b) for b in loader] == [2, 2, 1]  # the last batch is kept


def test_data_loader_benchmark(caplog):
    from detectron2.data.benchmark import DataLoaderBenchmark

    bench = DataLoaderBenchmark(_dicts(8), mapper=_mapper, total_batch_size=2, num_workers=2, max_time_seconds=5)
    with caplog.at_level(logging.INFO, logger="detectron2"):
        assert bench.benchmark_dataset(4, warmup=1) > 0
        assert bench.benchmark_mapper(4, warmup=1) > 0
        assert len(bench.benchmark_workers(2, warmup=1)) == 3  # 0, 1 and 2 workers
        assert bench.benchmark_IPC(2, warmup=1) > 0
        assert bench.benchmark_distributed(2, warmup=1) > 0
    assert "Dataset Alone" in caplog.text and "w/o comm" in caplog.text and "GPU0" in caplog.text
