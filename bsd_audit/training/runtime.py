"""Where and how the compute runs: device, threads, precision, seeds."""

from __future__ import annotations

import contextlib
import os
import random
from dataclasses import dataclass

import numpy as np
import torch

from ..config import Config
from ..errors import UsageError
from . import distributed


@dataclass
class Runtime:
    device: torch.device
    amp_dtype: torch.dtype | None  # autocast dtype, None = full fp32
    channels_last: bool

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def generator(self, seed: int) -> torch.Generator:
        """A generator on the compute device: draws made there never round-trip through the host."""
        return torch.Generator(device=self.device).manual_seed(seed)

    def info(self) -> dict:
        """The device as fields (the JSON summaries' ``device``): type, name, index, threads, ranks."""
        w = distributed.world()
        cuda = self.device.type == "cuda"
        return {"type": self.device.type, "name": torch.cuda.get_device_name(self.device) if cuda else "cpu",
                "index": (self.device.index or 0) if cuda else None, "threads": torch.get_num_threads(),
                "ranks": w.size}

    def describe(self) -> str:
        w = distributed.world()
        ranks = f", {w.size} ranks" if w.size > 1 else ""
        if self.device.type == "cuda":
            return f"{self.device} ({torch.cuda.get_device_name(self.device)}{ranks})"
        return f"cpu ({torch.get_num_threads()} threads{ranks})"


def make_runtime(cfg: Config) -> Runtime:
    if cfg.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            device = torch.device(cfg.device)
        except RuntimeError as exc:
            raise UsageError(f"unknown device {cfg.device!r}: use auto, cpu, cuda or cuda:N") from exc
        if device.type == "cuda" and not torch.cuda.is_available():
            raise UsageError(f"device {cfg.device!r} asked for, but this machine has no usable CUDA GPU; use --set device=cpu")
    # Under torchrun: join the process group; each rank drives its own GPU, or its share of the cores.
    w = distributed.init(device.type)
    if device.type == "cuda" and w.size > 1:
        device = torch.device("cuda", w.local_rank)
        torch.cuda.set_device(device)
    if device.type == "cpu":
        torch.set_num_threads(cfg.threads or max(1, (os.cpu_count() or 1) // w.local_size))
    if cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()):
        amp = torch.bfloat16
    else:
        amp = None
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = False  # determinism over the last few percent of speed
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return Runtime(device, amp, cfg.channels_last)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
