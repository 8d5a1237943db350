"""Distributed data-parallel helpers: the device of this process, the process group, rank and world size.

Under ``torchrun --nproc_per_node N`` every process reads ``WORLD_SIZE``/``LOCAL_RANK`` from the environment;
:func:`setup` starts the process group (gloo on CPU, nccl on CUDA) and pins each process to its own GPU.

Example:
    >>> started, rank, world, device = setup("cpu")  # one process: no group is started
    >>> started, rank, world, device
    (False, 0, 1, device(type='cpu'))
"""

from __future__ import annotations

import os
from typing import Optional

import torch
from torch import Tensor

__all__ = ["resolve_device", "setup", "dist_info", "all_reduce_sum"]


def resolve_device(spec: Optional[str] = None, local_rank: Optional[int] = None) -> torch.device:
    """The device named by ``spec`` (default: ``cuda`` when available, else ``cpu``).

    A bare ``cuda`` under torchrun becomes ``cuda:<local_rank>``. An unknown name or CUDA requested where it is
    not available raises a one-line :class:`ValueError`.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if spec is None:
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(spec)
    except RuntimeError:
        raise ValueError(f"unknown device {spec!r}; expected cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {spec!r} requested but CUDA is not available; use --device cpu")
        if local_rank is not None and dev.index is None:
            dev = torch.device("cuda", local_rank)
    return dev


def dist_info() -> tuple[bool, int, int]:
    """``(distributed, rank, world_size)`` of the current process group (``(False, 0, 1)`` without one)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return True, torch.distributed.get_rank(), torch.distributed.get_world_size()
    return False, 0, 1


def all_reduce_sum(t: Tensor, distributed: bool) -> Tensor:
    """Sums ``t`` in place over the processes when ``distributed`` (else returns it unchanged)."""
    if distributed:
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.SUM)
    return t


def setup(device_spec: Optional[str] = None) -> tuple[bool, int, int, torch.device]:
    """Starts the process group when run by torchrun (``WORLD_SIZE > 1``) and no group exists yet.

    Returns ``(started, rank, world_size, device)``; ``started`` says whether this call started the group (the
    caller then ends it with :func:`torch.distributed.destroy_process_group`).
    """
    running, rank, world = dist_info()
    if running or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False, rank, world, resolve_device(device_spec)
    dev = resolve_device(device_spec, int(os.environ.get("LOCAL_RANK", "0")))
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    torch.distributed.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return True, torch.distributed.get_rank(), torch.distributed.get_world_size(), dev
