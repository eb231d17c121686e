import itertools
from unittest import mock

import pytest
import torch
from torch.utils.data import SequentialSampler

from detectron2.data.samplers import (
    GroupedBatchSampler,
    InferenceSampler,
    RandomSubsetTrainingSampler,
    RepeatFactorTrainingSampler,
    TrainingSampler,
)


def _take(sampler, n):
    return list(itertools.islice(iter(sampler), n))


def _as_rank(rank, world_size):
    return mock.patch.multiple(
        "detectron2.utils.comm", get_rank=lambda: rank, get_world_size=lambda: world_size
    )


def test_training_sampler_deterministic_and_epochs():
    a = _take(TrainingSampler(10, seed=3), 30)
    assert a == _take(TrainingSampler(10, seed=3), 30)
    assert a != _take(TrainingSampler(10, seed=4), 30)
    for epoch in range(3):  # each epoch is a permutation
        assert sorted(a[epoch * 10 : (epoch + 1) * 10]) == list(range(10))
    assert a[:10] != a[10:20]
    assert _take(TrainingSampler(5, shuffle=False, seed=0), 12) == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]


def test_training_sampler_shards_by_rank():
    full = _take(TrainingSampler(7, seed=1), 42)
    shards = []
    for rank in range(3):
        with _as_rank(rank, 3):
            shards.append(_take(TrainingSampler(7, seed=1), 14))
    assert shards[0] == full[0::3] and shards[1] == full[1::3] and shards[2] == full[2::3]


def test_training_sampler_bad_size():
    with pytest.raises(ValueError, match="size"):
        TrainingSampler(0)


@pytest.mark.parametrize("size,world_size", [(10, 3), (2, 4), (7, 1), (100, 8), (0, 2)])
def test_inference_sampler_covers_each_index_once(size, world_size):
    shards = []
    for rank in range(world_size):
        with _as_rank(rank, world_size):
            s = InferenceSampler(size)
        shards.append(list(s))
        assert len(s) == len(shards[-1])
    flat = [i for shard in shards for i in shard]
    assert flat == list(range(size))  # contiguous, in rank order, each once
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_random_subset_sampler():
    s = RandomSubsetTrainingSampler(20, 0.25, seed_shuffle=0, seed_subset=1)
    seq = _take(s, 15)
    subset = set(seq[:5])
    assert len(subset) == 5 and set(seq) == subset and subset <= set(range(20))
    again = RandomSubsetTrainingSampler(20, 0.25, seed_shuffle=5, seed_subset=1)
    assert set(_take(again, 5)) == subset  # the subset depends on seed_subset only
    with pytest.raises(ValueError, match="subset_ratio"):
        RandomSubsetTrainingSampler(20, 0.0)


def test_repeat_factors_hand_case():
    dicts = [
        {"annotations": [{"category_id": 0}, {"category_id": 1}]},
        {"annotations": [{"category_id": 0}]},
        {"annotations": [{"category_id": 0}]},
        {"annotations": [{"category_id": 0}, {"category_id": 0}]},
        {"annotations": []},
    ]
    # f(0) = 4/5, f(1) = 1/5; threshold 0.8: r(0) = 1, r(1) = sqrt(0.8/0.2) = 2 (or 4 without sqrt)
    rf = RepeatFactorTrainingSampler.repeat_factors_from_category_frequency(dicts, 0.8)
    assert rf.dtype == torch.float32
    assert torch.allclose(rf, torch.tensor([2.0, 1.0, 1.0, 1.0, 1.0]))
    rf = RepeatFactorTrainingSampler.repeat_factors_from_category_frequency(dicts, 0.8, sqrt=False)
    assert torch.allclose(rf, torch.tensor([4.0, 1.0, 1.0, 1.0, 1.0]))


def test_repeat_factor_sampler_stochastic_rounding():
    n = 4000
    s = RepeatFactorTrainingSampler(torch.tensor([1.0, 2.0, 0.5, 0.0]).repeat(n), seed=0, shuffle=False)
    g = torch.Generator()
    g.manual_seed(0)
    counts = torch.bincount(s._get_epoch_indices(g) % 4, minlength=4).float() / n
    assert counts[0] == 1 and counts[1] == 2 and counts[3] == 0
    assert abs(counts[2].item() - 0.5) < 0.05  # 0.5 rounds up about half of the time
    seq = _take(RepeatFactorTrainingSampler(torch.tensor([1.0, 3.0]), seed=2), 40)
    assert seq.count(1) == 30
    assert seq == _take(RepeatFactorTrainingSampler(torch.tensor([1.0, 3.0]), seed=2), 40)


def test_repeat_factor_sampler_bad_input():
    with pytest.raises(ValueError, match="repeat_factors"):
        RepeatFactorTrainingSampler(torch.ones(2, 2))
    with pytest.raises(ValueError, match=">= 0"):
        RepeatFactorTrainingSampler(torch.tensor([1.0, -1.0]))


def test_grouped_batch_sampler():
    group_ids = [0, 1, 0, 1, 1, 0, 0, 1]
    batches = list(GroupedBatchSampler(SequentialSampler(range(8)), group_ids, 2))
    assert batches == [[0, 2], [1, 3], [5, 6], [4, 7]]
    for b in batches:
        assert len({group_ids[i] for i in b}) == 1
    with pytest.raises(TypeError, match="not well-defined"):
        len(GroupedBatchSampler(SequentialSampler(range(8)), group_ids, 2))
    with pytest.raises(ValueError, match="1-D"):
        GroupedBatchSampler(SequentialSampler(range(2)), [[0, 1]], 2)
