"""Data parallelism on PyTorch's own engine: torch.distributed, started by torchrun.

    torchrun --nproc_per_node=4 -m bsd_audit split DATA --out split.h5

Every rank holds the whole dataset (or reads it from the shared decode cache) and draws the same
random numbers: batch order, augmentation and mixup come from generators seeded alike, so all
ranks agree on each *global* batch and each trains on its own contiguous share of it (``shard``).
DistributedDataParallel averages the gradients, so a step sees the same global batch as a
single-process run; only batch-norm statistics are per rank, as in any DDP training.

Per-sample scores are computed on each rank's share of the samples and gathered back in sample
order (``gather_rows``); pools are decided on rank 0 and broadcast (``broadcast_mask``); only rank 0
writes files (artifacts/h5.py asks ``is_main``). Without torchrun (no WORLD_SIZE in the
environment) every function here is the identity, and the code path is the single-process one.
"""

from __future__ import annotations

import atexit
import gc
import os
import weakref
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1


def launched() -> bool:
    """True when started by torchrun (or another launcher setting the same variables) with 2+ ranks."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device_type: str) -> World:
    """Join the process group torchrun set up (once per process): NCCL between GPUs, gloo on CPUs."""
    if launched() and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
        atexit.register(_shutdown)
    return world()


def _shutdown() -> None:
    # Every rank reaches this point before any tears the group down: a rank destroying its gloo
    # group while another still exchanges with it can abort the process ("terminate called
    # without an active exception"). A rank that failed is ended by torchrun, not waited for.
    if dist.is_initialized():
        try:
            dist.barrier()
        finally:
            _wrapped.clear()  # DDP's reducers hold the group: free them before it goes
            gc.collect()
            dist.destroy_process_group()


def world() -> World:
    if not dist.is_initialized():
        return World()
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")),
                 int(os.environ.get("LOCAL_WORLD_SIZE", str(dist.get_world_size()))))


def is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def launched_as_main() -> bool:
    """Rank 0 of a torchrun launch (or a plain process), known before the process group exists."""
    return int(os.environ.get("RANK", "0")) == 0


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def _bounds(n: int, rank: int, size: int) -> tuple[int, int]:
    """Rows [start, stop) of ``rank``'s contiguous share of ``n``: sizes differ by at most one,
    lower ranks take the extra rows (torch.tensor_split's rule)."""
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def shard(n: int) -> slice:
    """This rank's contiguous share of ``n`` rows (a global batch, or all samples)."""
    w = world()
    return slice(*_bounds(n, w.rank, w.size))


_wrapped: "weakref.WeakKeyDictionary[nn.Module, nn.Module]" = weakref.WeakKeyDictionary()


def training_view(model: nn.Module) -> nn.Module:
    """The module to run training forward passes through: ``model`` itself in one process, its
    DistributedDataParallel wrapper (made once per model, at its first training step) under torchrun.
    Evaluation, state_dicts and checkpoints keep using ``model``: the wrapper shares its parameters."""
    if not dist.is_initialized():
        return model
    if model not in _wrapped:
        dev = next(model.parameters()).device
        _wrapped[model] = nn.parallel.DistributedDataParallel(
            model, device_ids=[dev.index] if dev.type == "cuda" else None)
    return _wrapped[model]


def differs_across_ranks(value) -> bool:
    """True when some rank holds another ``value`` (any picklable object) than rank 0 does: e.g. a
    checkpoint that only the ranks on rank 0's machine can see."""
    if not dist.is_initialized():
        return False
    values = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return any(v != values[0] for v in values)


def sync_buffers(model: nn.Module) -> None:
    """Rank 0's buffers (batch norm's running statistics) on every rank. Each rank's training steps
    update them with its own rows; evaluation must use one model, and the one a checkpoint stores
    (rank 0's), so a resumed run evaluates exactly as an uninterrupted one."""
    if dist.is_initialized():
        for buf in model.buffers():
            dist.broadcast(buf.data, src=0)


def mean_across(value: torch.Tensor) -> torch.Tensor:
    """The mean of a per-rank scalar over ranks (an epoch's mean loss: every rank then reports, and
    checks for divergence, the same number)."""
    if not dist.is_initialized():
        return value
    out = value.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / dist.get_world_size()


def sum_across_(*tensors: torch.Tensor) -> None:
    """In-place sum over ranks: per-sample statistics each rank filled for its own samples (zeros
    elsewhere) become the full vectors on every rank."""
    if dist.is_initialized():
        for t in tensors:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)


def gather_rows(local: torch.Tensor, n: int) -> torch.Tensor:
    """Rows each rank computed for its ``shard(n)`` of the samples, concatenated in sample order on
    every rank. all_gather needs equal sizes, so shares are padded to the largest and trimmed."""
    if not dist.is_initialized():
        return local
    size = dist.get_world_size()
    lengths = [stop - start for start, stop in (_bounds(n, r, size) for r in range(size))]
    padded = local.new_zeros((lengths[0], *local.shape[1:]))  # rank 0's share is the longest
    padded[:len(local)] = local
    parts = [torch.empty_like(padded) for _ in range(size)]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([p[:k] for p, k in zip(parts, lengths)])


def broadcast_mask(mask: np.ndarray | None) -> np.ndarray | None:
    """Rank 0's pool (a boolean mask over the samples) on every rank: a pool is decided once."""
    if mask is None or not dist.is_initialized():
        return mask
    t = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.uint8))
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.broadcast(t, src=0)
    return t.cpu().numpy().astype(bool)
