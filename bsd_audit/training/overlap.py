"""The two models' updates of one BSD epoch, run side by side.

Within an epoch of Algorithm 1 the main model's update (warm-up on D_nt, then MixMatch on the
pools) and the altruistic model's update (CE on all of D) read the pools fixed at the epoch's start
and never each other's weights, so they may run at the same time. On a GPU a small model leaves most
of the device idle; with overlap the altruistic epoch runs in a second host thread on its own CUDA
stream while the main epoch runs on the default one, and the kernels of both interleave.

Each update draws from its own generator (the altruistic one is seeded from the main generator at the
start of the epoch, overlap or not), so the draws do not depend on whether, or how, the two
interleave: on a GPU, and on a CPU at one thread, overlap on and off give the same split.

On a CPU each update runs on its share of the intra-op threads (``thread_shares``). A host thread
that torch has not seen takes the process's whole thread count for its own OpenMP team, so without
the shares two updates ran 2n compute threads on n cores; OpenMP's threads wait for each other by
spinning, and an oversubscribed core makes every barrier wait for a descheduled thread: one BSD
epoch took 91.9 s at once against 10.2 s one after the other (bf16, 2 cores). A kernel's result can
depend on how many threads split its reductions, so overlap on and off round differently on a CPU
with more than one thread; each setting repeats its own split.

Config ``overlap``: auto = on for a single CUDA process without torch.compile; on; off. It is never
used under torchrun (two threads issuing collectives on one process group could order them
differently on different ranks) nor with compile (dynamo is not made to trace from two threads).
On a CPU auto leaves it off (docs/decisions/0020-overlap-off-on-cpu.md).
"""

from __future__ import annotations

import threading
from typing import Callable, TypeVar

import torch

from ..config import Config
from .distributed import world
from .runtime import Runtime

A = TypeVar("A")
B = TypeVar("B")


def overlap_enabled(cfg: Config, rt: Runtime) -> bool:
    if cfg.overlap == "off" or world().size > 1 or cfg.compile:
        return False
    return cfg.overlap == "on" or rt.device.type == "cuda"


def side_generator(gen: torch.Generator, rt: Runtime) -> torch.Generator:
    """A generator for the altruistic update of one epoch, seeded by one draw from ``gen``."""
    seed = int(torch.randint(0, 2**62, (1,), device=gen.device, generator=gen).item())
    return rt.generator(seed)


def thread_shares(threads: int) -> tuple[int, int]:
    """The intra-op threads of the main and the side update when they run at once on a CPU: the
    process's threads split between them (the main update, the longer one, takes the odd one), at
    least one each."""
    return max(1, (threads + 1) // 2), max(1, threads // 2)


def side_by_side(main: Callable[[], A], side: Callable[[], B], rt: Runtime, enabled: bool) -> tuple[A, B]:
    """``main()`` and ``side()``, run one after the other, or at once when ``enabled`` (``side`` in a
    second thread, on its own CUDA stream on a GPU, on its share of the threads on a CPU). An
    exception in either is raised here."""
    if not enabled:
        return main(), side()
    cuda = rt.device.type == "cuda"
    stream = torch.cuda.Stream(device=rt.device) if cuda else None
    if cuda:  # the side stream starts after everything queued so far (the weights it reads)
        stream.wait_stream(torch.cuda.current_stream(rt.device))
    threads = torch.get_num_threads()
    main_threads, side_threads = thread_shares(threads)
    out: dict[str, object] = {}

    def run_side():
        try:
            if cuda:
                with torch.cuda.device(rt.device), torch.cuda.stream(stream):
                    out["value"] = side()
            else:
                torch.set_num_threads(side_threads)  # this thread's OpenMP team only
                out["value"] = side()
        except BaseException as exc:  # re-raised in the calling thread
            out["error"] = exc

    thread = threading.Thread(target=run_side, name="bsd-altruistic", daemon=True)
    if not cuda:
        torch.set_num_threads(main_threads)
    thread.start()
    try:
        main_value = main()
    finally:
        thread.join()
        if cuda:  # later work on the default stream sees the side stream's results
            torch.cuda.current_stream(rt.device).wait_stream(stream)
        else:
            torch.set_num_threads(threads)
    if "error" in out:
        raise out["error"]
    return main_value, out["value"]
