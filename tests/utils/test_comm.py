"""comm in a single process (no torch.distributed initialized)."""
import numpy as np
import pytest
import torch

from detectron2.utils import comm


def test_single_process_values():
    assert comm.get_world_size() == 1
    assert comm.get_rank() == 0
    assert comm.get_local_rank() == 0
    assert comm.get_local_size() == 1
    assert comm.is_main_process()
    comm.synchronize()  # a no-op


def test_gathers_return_own_data():
    data = {"a": [1, 2]}
    assert comm.all_gather(data) == [data]
    assert comm.gather(data) == [data]
    assert comm.gather(data, dst=0) == [data]


def test_shared_random_seed_follows_numpy_rng():
    np.random.seed(3)
    a = comm.shared_random_seed()
    np.random.seed(3)
    b = comm.shared_random_seed()
    assert a == b and 0 <= a < 2**31


def test_reduce_dict_is_identity():
    d = {"b": torch.tensor(2.0), "a": torch.tensor(1.0)}
    assert comm.reduce_dict(d) is d
    assert comm.reduce_dict(d, average=False) is d


def test_local_process_group_missing_is_explained():
    with pytest.raises(RuntimeError, match="create_local_process_group"):
        comm.get_local_process_group()


def test_gloo_group_world_of_one(tmp_path):
    """A real (1-process) gloo group exercises the distributed code paths."""
    import torch.distributed as dist

    if not dist.is_available():
        pytest.fail("torch.distributed is not available in this build")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rdzv'}", rank=0, world_size=1)
    try:
        comm._get_global_gloo_group.cache_clear()
        comm.create_local_process_group.cache_clear()
        comm.create_local_process_group(1)
        assert comm.get_world_size() == 1 and comm.get_rank() == 0
        assert comm.get_local_rank() == 0 and comm.get_local_size() == 1
        comm.synchronize()
        assert comm.all_gather("x") == ["x"]
        assert comm.gather(5) == [5]
    finally:
        comm._LOCAL_PROCESS_GROUP = None
        comm.create_local_process_group.cache_clear()
        comm._get_global_gloo_group.cache_clear()
        dist.destroy_process_group()
    assert comm.get_world_size() == 1


def test_create_local_process_group_validates(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rdzv2'}", rank=0, world_size=1)
    try:
        comm.create_local_process_group.cache_clear()
        with pytest.raises(ValueError, match="divide the world size"):
            comm.create_local_process_group(2)
    finally:
        comm._LOCAL_PROCESS_GROUP = None
        comm.create_local_process_group.cache_clear()
        dist.destroy_process_group()
