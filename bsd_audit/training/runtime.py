"""Where and how the compute runs: device, threads, precision, seeds."""

from __future__ import annotations

import contextlib
import os
import platform
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import Config
from ..errors import UsageError
from . import distributed


# CPU flags of native bf16 arithmetic: x86 AVX512-BF16 and AMX, Arm's BF16 extension. Without them
# torch emulates bf16 on the CPU and runs slower than fp32 (pytorch/pytorch#118499).
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")
BF16_TRIAL_GAIN = 1.15  # with no flags to read, bf16 must beat fp32 by this factor in the timed trial
CPUINFO = Path("/proc/cpuinfo")


@dataclass
class Runtime:
    device: torch.device
    amp_dtype: torch.dtype | None  # autocast dtype, None = full fp32
    channels_last: bool
    precision_reason: str = ""  # why precision=auto chose what it did (empty when the config named it)

    @property
    def precision(self) -> str:
        return "fp32" if self.amp_dtype is None else "bf16"

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
                "ranks": w.size, "precision": self.precision, "precision_reason": self.precision_reason}

    def describe(self) -> str:
        w = distributed.world()
        ranks = f", {w.size} ranks" if w.size > 1 else ""
        if self.device.type == "cuda":
            return f"{self.device} ({torch.cuda.get_device_name(self.device)}{ranks}, {self.precision})"
        return f"cpu ({torch.get_num_threads()} threads{ranks}, {self.precision})"


def cpu_bf16_flags() -> bool | None:
    """Whether the CPU does bf16 arithmetic natively, from /proc/cpuinfo's flags (x86) or features
    (Arm); None where there is nothing to read (another OS). torch's own mkldnn check is no answer:
    it says yes on any AVX-512 CPU, where bf16 is emulated and slower than fp32."""
    try:
        text = CPUINFO.read_text(errors="replace")
    except OSError:
        return None
    flags = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    if not flags:
        return None
    return any(f in flags for f in BF16_CPU_FLAGS)


def bf16_trial(steps: int = 3) -> float:
    """fp32 time over bf16 time of a few training steps of a small conv net on the CPU (> 1: bf16 wins).
    The net's initialisation draws from a forked generator: the run's own draws stay as they were."""
    with torch.random.fork_rng(devices=[]):
        return _bf16_trial(steps)


def _bf16_trial(steps: int) -> float:
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.BatchNorm2d(32), torch.nn.ReLU(),
                              torch.nn.Conv2d(32, 64, 3, padding=1, stride=2), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(64, 10))
    x = torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    y = torch.arange(64) % 10

    def timed(dtype) -> float:
        best = float("inf")
        for i in range(steps + 1):  # the first call picks kernels: not timed
            t0 = time.perf_counter()
            with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
                loss = torch.nn.functional.cross_entropy(net(x), y)
            loss.backward()
            if i:
                best = min(best, time.perf_counter() - t0)
        return best

    return timed(None) / timed(torch.bfloat16)


def choose_cpu_precision() -> tuple[bool, str]:
    """precision=auto on a CPU: bf16 where the CPU has native bf16 arithmetic, fp32 where it has none.
    Only where the flags cannot be read does a short timed trial decide (and then the choice, like any
    timing, may differ between runs: pin it with --set precision=fp32|bf16 for repeatable splits)."""
    flags = cpu_bf16_flags()
    if flags is not None:
        return flags, ("the CPU has native bf16 arithmetic" if flags else "the CPU has no native bf16 arithmetic")
    gain = bf16_trial()
    return gain >= BF16_TRIAL_GAIN, f"no CPU flags on {platform.system()}; a timed trial ran bf16 {gain:.2f}x fp32's speed"


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
    reason = ""
    if cfg.precision == "auto" and device.type == "cuda":
        use_bf16 = torch.cuda.is_bf16_supported()
        reason = "the GPU supports bf16" if use_bf16 else "the GPU has no bf16"
    elif cfg.precision == "auto":
        use_bf16, reason = choose_cpu_precision()
    else:
        use_bf16 = cfg.precision == "bf16"
    amp = torch.bfloat16 if use_bf16 else None
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = False  # determinism over the last few percent of speed
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return Runtime(device, amp, cfg.channels_last, reason)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
