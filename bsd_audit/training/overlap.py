"""The two models' updates of one BSD epoch, run side by side.

Within an epoch of Algorithm 1 the main model's update (warm-up on D_nt, then MixMatch on the
pools) and the altruistic model's update (CE on all of D) read the pools fixed at the epoch's start
and never each other's weights, so they may run at the same time. On a GPU a small model leaves most
of the device idle; with overlap the altruistic epoch runs in a second host thread on its own CUDA
stream while the main epoch runs on the default one, and the kernels of both interleave.

Each update draws from its own generator (the altruistic one is seeded from the main generator at the
start of the epoch, overlap or not), so the result does not depend on whether, or how, the two
interleave: overlap on and off give the same split.

Config ``overlap``: auto = on for a single CUDA process without torch.compile; on; off. It is never
used under torchrun (two threads issuing collectives on one process group could order them
differently on different ranks) nor with compile (dynamo is not made to trace from two threads).
On a CPU both threads share the same cores, so auto leaves it off there.
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


def side_by_side(main: Callable[[], A], side: Callable[[], B], rt: Runtime, enabled: bool) -> tuple[A, B]:
    """``main()`` and ``side()``, run one after the other, or at once when ``enabled`` (``side`` in a
    second thread, on its own CUDA stream on a GPU). An exception in either is raised here."""
    if not enabled:
        return main(), side()
    cuda = rt.device.type == "cuda"
    stream = torch.cuda.Stream(device=rt.device) if cuda else None
    if cuda:  # the side stream starts after everything queued so far (the weights it reads)
        stream.wait_stream(torch.cuda.current_stream(rt.device))
    out: dict[str, object] = {}

    def run_side():
        try:
            if cuda:
                with torch.cuda.device(rt.device), torch.cuda.stream(stream):
                    out["value"] = side()
            else:
                out["value"] = side()
        except BaseException as exc:  # re-raised in the calling thread
            out["error"] = exc

    thread = threading.Thread(target=run_side, name="bsd-altruistic", daemon=True)
    thread.start()
    try:
        main_value = main()
    finally:
        thread.join()
        if cuda:  # later work on the default stream sees the side stream's results
            torch.cuda.current_stream(rt.device).wait_stream(stream)
    if "error" in out:
        raise out["error"]
    return main_value, out["value"]
