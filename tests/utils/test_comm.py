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
        comm.release_process_groups()
        comm.create_local_process_group(1)
        assert comm.get_world_size() == 1 and comm.get_rank() == 0
        assert comm.get_local_rank() == 0 and comm.get_local_size() == 1
        comm.synchronize()
        assert comm.all_gather("x") == ["x"]
        assert comm.gather(5) == [5]
    finally:
        dist.destroy_process_group()
        comm.release_process_groups()
    assert comm.get_world_size() == 1


def test_create_local_process_group_validates(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rdzv2'}", rank=0, world_size=1)
    try:
        comm.release_process_groups()
        with pytest.raises(ValueError, match="divide the world size"):
            comm.create_local_process_group(2)
    finally:
        dist.destroy_process_group()
        comm.release_process_groups()


def test_a_second_job_in_the_same_process_gets_its_own_local_group(tmp_path):
    # launch's teardown (destroy, then release_process_groups) lets a process run a
    # second job: the local group is created again, not the first job's (destroyed) one.
    import torch.distributed as dist

    groups = []
    for i in range(2):
        dist.init_process_group("gloo", init_method=f"file://{tmp_path / f'job{i}'}", rank=0, world_size=1)
        comm.create_local_process_group(1)
        groups.append(comm.get_local_process_group())
        assert comm.get_local_size() == 1 and comm.all_gather(i) == [i]
        dist.destroy_process_group()
        comm.release_process_groups()
    assert groups[0] is not groups[1]
    with pytest.raises(RuntimeError, match="create_local_process_group"):
        comm.get_local_process_group()
