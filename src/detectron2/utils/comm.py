"""Helpers for multi-process (torch.distributed) training.

Every function also works in a single process without torch.distributed initialized,
where it degenerates to the obvious answer (world size 1, rank 0, no-op barriers).
"""
import functools
from typing import Any, Dict, List, Optional

import numpy as np
import torch
import torch.distributed as dist

_LOCAL_PROCESS_GROUP = None
"""The process group of the processes on this machine; set by create_local_process_group."""

_MISSING_LOCAL_PG_ERROR = (
    "Local process group is not yet created! Please use detectron2's `launch()` "
    "to start processes and initialize pytorch process group. If you need to start "
    "processes in other ways, please call comm.create_local_process_group("
    "num_workers_per_machine) after calling torch.distributed.init_process_group()."
)


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_world_size() -> int:
    return dist.get_world_size() if _distributed() else 1


def get_rank() -> int:
    return dist.get_rank() if _distributed() else 0


@functools.lru_cache()
def create_local_process_group(num_workers_per_machine: int) -> None:
    """Create the per-machine process group (call on every rank, with the same argument).

    Ranks are assumed to be laid out machine by machine: machine ``i`` holds global ranks
    ``[i * num_workers_per_machine, (i + 1) * num_workers_per_machine)``.
    """
    global _LOCAL_PROCESS_GROUP
    if _LOCAL_PROCESS_GROUP is not None:
        raise RuntimeError("The local process group was already created")
    world_size = get_world_size()
    if num_workers_per_machine <= 0 or world_size % num_workers_per_machine != 0:
        raise ValueError(
            f"num_workers_per_machine must be positive and divide the world size {world_size}, "
            f"got {num_workers_per_machine}"
        )
    num_machines = world_size // num_workers_per_machine
    machine_rank = get_rank() // num_workers_per_machine
    for i in range(num_machines):
        ranks = list(range(i * num_workers_per_machine, (i + 1) * num_workers_per_machine))
        pg = dist.new_group(ranks)  # collective: every rank creates every group
        if i == machine_rank:
            _LOCAL_PROCESS_GROUP = pg


def release_process_groups() -> None:
    """Drop this module's references to process groups (the local group and the cached
    gloo group), after ``dist.destroy_process_group()``: the groups are then freed while
    the interpreter is alive. Freed during interpreter shutdown instead, gloo's worker
    threads can abort the process (SIGABRT) after a successful job; a later
    ``init_process_group`` in the same process can create its local group again."""
    global _LOCAL_PROCESS_GROUP
    _LOCAL_PROCESS_GROUP = None
    create_local_process_group.cache_clear()
    _get_global_gloo_group.cache_clear()


def get_local_process_group():
    """The process group of the processes on this machine."""
    if _LOCAL_PROCESS_GROUP is None:
        raise RuntimeError(_MISSING_LOCAL_PG_ERROR)
    return _LOCAL_PROCESS_GROUP


def get_local_rank() -> int:
    """Rank of this process among the processes of its machine."""
    if not _distributed():
        return 0
    return dist.get_rank(group=get_local_process_group())


def get_local_size() -> int:
    """Number of processes on this machine."""
    if not _distributed():
        return 1
    return dist.get_world_size(group=get_local_process_group())


def is_main_process() -> bool:
    return get_rank() == 0


def synchronize() -> None:
    """Barrier across all processes (a no-op in a single process)."""
    if get_world_size() == 1:
        return
    if dist.get_backend() == dist.Backend.NCCL:
        # Naming the device avoids NCCL guessing (and hanging on) the wrong GPU.
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


@functools.lru_cache()
def _get_global_gloo_group():
    """A gloo group over all ranks, for exchanging arbitrary picklable objects on CPU."""
    if dist.get_backend() == dist.Backend.NCCL:
        return dist.new_group(backend="gloo")
    return dist.group.WORLD


def all_gather(data: Any, group=None) -> List[Any]:
    """Gather a picklable object from every rank; returns the list in rank order."""
    if get_world_size() == 1:
        return [data]
    if group is None:
        group = _get_global_gloo_group()
    world_size = dist.get_world_size(group)
    if world_size == 1:
        return [data]
    output: List[Any] = [None for _ in range(world_size)]
    dist.all_gather_object(output, data, group=group)
    return output


def gather(data: Any, dst: int = 0, group=None) -> List[Any]:
    """Gather a picklable object from every rank onto rank ``dst``.

    Returns the list of all objects on ``dst`` and an empty list on other ranks.
    """
    if get_world_size() == 1:
        return [data]
    if group is None:
        group = _get_global_gloo_group()
    world_size = dist.get_world_size(group=group)
    if world_size == 1:
        return [data]
    if dist.get_rank(group=group) == dst:
        output: Optional[List[Any]] = [None for _ in range(world_size)]
        dist.gather_object(data, output, dst=dst, group=group)
        return output
    dist.gather_object(data, None, dst=dst, group=group)
    return []


def shared_random_seed() -> int:
    """A random int in [0, 2^31) that is the same on all ranks (rank 0's draw)."""
    ints = np.random.randint(2**31)
    return all_gather(ints)[0]


def reduce_dict(input_dict: Dict[str, torch.Tensor], average: bool = True) -> Dict[str, torch.Tensor]:
    """Sum (or average) a dict of scalar tensors over all ranks; the result is valid on rank 0.

    Keys are processed in sorted order so every rank stacks the same values.
    """
    world_size = get_world_size()
    if world_size < 2:
        return input_dict
    with torch.no_grad():
        names = sorted(input_dict.keys())
        values = torch.stack([input_dict[k] for k in names], dim=0)
        dist.reduce(values, dst=0)
        if dist.get_rank() == 0 and average:
            values /= world_size  # only the destination holds the sum
        return dict(zip(names, values))
