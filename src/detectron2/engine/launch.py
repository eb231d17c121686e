"""Start one process per GPU (or per CPU worker) on each machine and join them into a
torch.distributed process group before calling the user's main function."""
import gc
import logging
import socket
from datetime import timedelta
from typing import Any, Callable, Optional, Tuple

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from detectron2.utils import comm

__all__ = ["DEFAULT_TIMEOUT", "launch"]

DEFAULT_TIMEOUT = timedelta(minutes=30)

_URL_SCHEMES = ("tcp://", "file://", "env://")

logger = logging.getLogger(__name__)


def _find_free_port() -> int:
    """A TCP port that is free now (the OS picks it; another process could still take
    it before we bind, which is why "auto" is only for single-machine jobs)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("", 0))
        return sock.getsockname()[1]
    finally:
        sock.close()


def _check_launch_args(num_gpus_per_machine: int, num_machines: int, machine_rank: int, dist_url: Optional[str]) -> None:
    for name, value in (("num_gpus_per_machine", num_gpus_per_machine), ("num_machines", num_machines)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not isinstance(machine_rank, int) or not 0 <= machine_rank < num_machines:
        raise ValueError(f"machine_rank must be an int in [0, num_machines={num_machines}), got {machine_rank!r}")
    if num_machines * num_gpus_per_machine == 1:
        return
    if dist_url is None:
        raise ValueError("dist_url is required when more than one process is launched (e.g. 'tcp://HOST:PORT' or 'auto')")
    if dist_url == "auto":
        if num_machines != 1:
            raise ValueError("dist_url=auto not supported in multi-machine jobs: give tcp://HOST:PORT of machine 0")
    elif not dist_url.startswith(_URL_SCHEMES):
        raise ValueError(f"dist_url must be 'auto' or start with one of {_URL_SCHEMES}, got {dist_url!r}")
    if torch.cuda.is_available() and num_gpus_per_machine > torch.cuda.device_count():
        raise ValueError(
            f"num_gpus_per_machine={num_gpus_per_machine} but only {torch.cuda.device_count()} GPUs are visible"
        )


def launch(
    main_func: Callable[..., Any],
    num_gpus_per_machine: int,
    num_machines: int = 1,
    machine_rank: int = 0,
    dist_url: Optional[str] = None,
    args: Tuple = (),
    timeout: timedelta = DEFAULT_TIMEOUT,
) -> None:
    """Run ``main_func(*args)`` in ``num_machines * num_gpus_per_machine`` processes.

    Each machine runs this with the same arguments except ``machine_rank``; it spawns
    ``num_gpus_per_machine`` processes that join one process group (NCCL when CUDA is
    available, one GPU per process; gloo otherwise, where ``num_gpus_per_machine`` is
    the number of CPU processes) and create comm's local (per-machine) group. With a
    single process in total, ``main_func`` runs in this process with no process group.

    Args:
        main_func: a picklable (module-level) function; it is sent to spawned processes.
        num_gpus_per_machine: processes per machine (GPUs, or CPU workers without CUDA).
        num_machines: the number of machines.
        machine_rank: this machine's rank, in [0, num_machines).
        dist_url: the rendezvous URL, "tcp://IP_OF_MACHINE_0:PORT" (or file://, env://);
            "auto" picks a free local port (single machine only).
        args: positional arguments of ``main_func``.
        timeout: timeout of the process group's collectives.
    """
    _check_launch_args(num_gpus_per_machine, num_machines, machine_rank, dist_url)
    world_size = num_machines * num_gpus_per_machine
    if world_size == 1:
        main_func(*args)
        return
    if dist_url == "auto":
        dist_url = f"tcp://127.0.0.1:{_find_free_port()}"
    if num_machines > 1 and dist_url.startswith("file://"):
        logger.warning("file:// is not a reliable init_method in multi-machine jobs. Prefer tcp://")
    mp.start_processes(
        _distributed_worker,
        nprocs=num_gpus_per_machine,
        args=(main_func, world_size, num_gpus_per_machine, machine_rank, dist_url, args, timeout),
        daemon=False,
        start_method="spawn",  # fork would copy CUDA state and threads into children
    )


def _distributed_worker(
    local_rank: int,
    main_func: Callable[..., Any],
    world_size: int,
    num_gpus_per_machine: int,
    machine_rank: int,
    dist_url: str,
    args: Tuple,
    timeout: timedelta = DEFAULT_TIMEOUT,
) -> None:
    has_gpu = torch.cuda.is_available()
    if has_gpu and num_gpus_per_machine > torch.cuda.device_count():
        raise ValueError(
            f"num_gpus_per_machine={num_gpus_per_machine} but only {torch.cuda.device_count()} GPUs are visible"
        )
    global_rank = machine_rank * num_gpus_per_machine + local_rank
    try:
        dist.init_process_group(
            backend="NCCL" if has_gpu else "GLOO",
            init_method=dist_url,
            world_size=world_size,
            rank=global_rank,
            timeout=timeout,
        )
    except Exception:
        logger.error("Process group URL: {}".format(dist_url))
        raise
    # Ranks are laid out machine by machine, which is what the local group assumes.
    comm.create_local_process_group(num_gpus_per_machine)
    if has_gpu:
        torch.cuda.set_device(local_rank)
    # Wait for all processes, so that no one starts before the group is complete.
    comm.synchronize()
    main_func(*args)
    # Only after success: a failed rank is torn down by start_processes instead.
    dist.destroy_process_group()
    # Free the groups now, not during interpreter shutdown, where gloo's threads can
    # abort a finished worker: comm's references go, then cyclic garbage that holds
    # a group (e.g. a DDP model's reducer).
    comm.release_process_groups()
    gc.collect()
