"""Where the decoded pixels live: one uint8 tensor in memory, or a file on disk streamed in batches.

Everything downstream reads pixels as ``ds.images[idx]`` (idx a LongTensor of sample indices) and
gets an N x 3 x S x S uint8 tensor on the compute device, in idx order. A torch tensor does that
when the data fits where the compute is (the airbench way: no loader, no workers). When it does not,
``DiskImages`` does the same from the decode cache's pixel file, reading only the rows a batch needs.

The disk store reads with positioned reads (os.preadv) into a fresh batch buffer, not through a
memory map: pages of a mapped file count in the process's resident memory (and so in its peak,
ru_maxrss) for as long as they stay mapped, while pread leaves them in the OS page cache, which
the kernel gives back under pressure and which is not the process's memory.
"""

from __future__ import annotations

import os
from typing import Iterator

import numpy as np
import torch

from ..errors import BadInputError

STORES = ("auto", "memory", "disk")

# auto keeps the data in memory while its decoded size is at most this share of the memory
# available where it would live (host RAM, or free GPU memory): the rest is left for the models,
# their activations and whatever else runs on the machine.
MEMORY_SHARE = 0.5

_IOV_MAX = 1024  # buffers one preadv call may fill (Linux's IOV_MAX)
_SHARD_BYTES = 4 << 20  # rows per shard of a whole-data pass: about this many bytes


def _mib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def host_memory_available() -> int | None:
    """Bytes the host can give this process without swapping: MemAvailable, capped by a cgroup's
    (a container's) remaining limit where one is set."""
    avail = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(limit_file) as a, open(usage_file) as b:
                limit, used = a.read().strip(), int(b.read().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 1 << 60:  # "max" (v2) or a huge number (v1): no limit
            avail = min(avail, max(int(limit) - used, 0))
        break
    return avail


def choose_store(requested: str, nbytes: int, device: torch.device | str) -> tuple[str, str]:
    """``memory`` or ``disk`` for ``requested`` (auto | memory | disk), and why, in words."""
    if requested not in STORES:
        raise BadInputError(f"data_store {requested!r} is not one of {', '.join(STORES)}")
    if requested != "auto":
        return requested, f"data_store={requested}"
    device = torch.device(device)
    if device.type == "cuda":
        where, avail = "free GPU memory", torch.cuda.mem_get_info(device)[0]
    else:
        where, avail = "available host memory", host_memory_available()
    if avail is None:
        return "memory", f"auto: {where} unknown, decoded data {_mib(nbytes)}"
    if nbytes > MEMORY_SHARE * avail:
        return "disk", f"auto: decoded data {_mib(nbytes)} > {MEMORY_SHARE:.0%} of {_mib(avail)} {where}"
    return "memory", f"auto: decoded data {_mib(nbytes)} <= {MEMORY_SHARE:.0%} of {_mib(avail)} {where}"


class DiskImages:
    """N x 3 x S x S uint8 rows of a pixel file (raw, C order, from byte ``offset``), indexed like a
    tensor: ``images[idx]`` reads just those rows and returns them on ``device`` in idx order.

    Owns ``fd`` (closed with the object). ``path`` only names the file in messages: the file may
    have no name any more (an unpublished decode, see data/cache.py)."""

    dtype = torch.uint8

    def __init__(self, fd: int, offset: int, shape: tuple[int, int, int, int], device: torch.device | str,
                 path: str):
        self._fd, self.offset, self.shape = fd, offset, torch.Size(shape)
        self.device, self.path = torch.device(device), path
        self.row_shape = tuple(shape[1:])
        self.row_bytes = int(np.prod(self.row_shape))

    def __len__(self) -> int:
        return self.shape[0]

    def numel(self) -> int:
        return self.shape.numel()

    @property
    def nbytes(self) -> int:
        return self.shape.numel()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self):
        self.close()

    def __reduce__(self):
        # a copy would share (and close) this open file: each process loads its own (load_imagefolder)
        raise TypeError("DiskImages holds an open file and cannot be copied or pickled; load the data again")

    def __repr__(self) -> str:
        return f"DiskImages({tuple(self.shape)}, uint8, {self.path}, device={self.device})"

    # ------------------------------------------------------------------ reads
    def __getitem__(self, index) -> torch.Tensor:
        if isinstance(index, (int, np.integer)):
            return self[torch.tensor([int(index)])][0]
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step == 1:
                return self.rows(start, stop)
            index = np.arange(start, stop, step)
        rows = index.detach().cpu().numpy() if isinstance(index, torch.Tensor) else np.asarray(index)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        if rows.ndim != 1 or (rows.size and rows.dtype.kind not in "iu"):
            raise IndexError(f"DiskImages takes a 1-D array of sample indices, got shape {rows.shape} {rows.dtype}")
        rows = rows.astype(np.int64, copy=False)
        n = len(self)
        rows = np.where(rows < 0, rows + n, rows)
        if rows.size and (rows.min() < 0 or rows.max() >= n):
            raise IndexError(f"index out of range for {n} images")
        out = np.empty((len(rows),) + self.row_shape, dtype=np.uint8)
        if not len(rows):
            return self._to_device(out)
        # Sorted, for locality; each run of consecutive rows is one preadv that scatters the file's
        # bytes straight into their places in the batch, so the batch comes out in idx order.
        order = np.argsort(rows, kind="stable")
        ordered = rows[order]
        breaks = np.flatnonzero(np.diff(ordered) != 1) + 1
        flat, rb = memoryview(out).cast("B"), self.row_bytes
        for run in np.split(np.arange(len(rows)), breaks):
            for part in np.array_split(run, -(-len(run) // _IOV_MAX)):
                self._readv(int(ordered[part[0]]), [flat[int(j) * rb:(int(j) + 1) * rb] for j in order[part]])
        return self._to_device(out)

    def rows(self, start: int, stop: int) -> torch.Tensor:
        """Rows start..stop-1 in one read (a shard of a whole-data pass)."""
        stop = max(start, min(stop, len(self)))
        out = np.empty((stop - start,) + self.row_shape, dtype=np.uint8)
        self.read_into(start, out)
        return self._to_device(out)

    def read_into(self, start: int, out: np.ndarray) -> None:
        """Fill ``out`` (a C-contiguous uint8 array of len(out) rows) with rows from ``start`` on."""
        if len(out):
            self._readv(start, [memoryview(out).cast("B")])

    def shards(self, rows: int) -> Iterator[torch.Tensor]:
        """The whole data in order, ``rows`` rows at a time (the last shard may be shorter)."""
        for start in range(0, len(self), rows):
            yield self.rows(start, start + rows)

    def _readv(self, row: int, buffers: list[memoryview]) -> None:
        want = sum(b.nbytes for b in buffers)
        pos = self.offset + row * self.row_bytes
        got = os.preadv(self._fd, buffers, pos)
        while got < want:  # a short read: continue into what is left of the buffers
            if got == 0:
                raise BadInputError(f"{self.path}: the decoded-image cache file ends early (truncated?). "
                                    "Delete it (or run with --no-cache) and run the command again.")
            done, rest = got, []
            for b in buffers:
                if done >= b.nbytes:
                    done -= b.nbytes
                else:
                    rest.append(b.cast("B")[done:])
                    done = 0
            buffers, want, pos = rest, want - got, pos + got
            got = os.preadv(self._fd, buffers, pos)

    def _to_device(self, arr: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(arr)
        return t if self.device.type == "cpu" else t.to(self.device)


def shards(images, rows: int) -> Iterator[torch.Tensor]:
    """Contiguous shards of ``rows`` rows of either store, in order (a tensor shard is a view)."""
    if isinstance(images, DiskImages):
        yield from images.shards(rows)
    else:
        for start in range(0, len(images), rows):
            yield images[start:start + rows]


def shard_rows(images) -> int:
    """Rows per shard of a whole-data pass: about _SHARD_BYTES of uint8, at least one."""
    per_row = int(np.prod(tuple(images.shape[1:])))
    return max(1, _SHARD_BYTES // max(per_row, 1))
