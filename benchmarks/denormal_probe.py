"""Whether flushing denormal floats speeds up fp32 training on this CPU.

Trains the `cpu` preset's main model a few epochs on DATA (supervised, as the split's warm-up does),
counts the denormal values in its weights and Adam state, then times supervised epochs on 1,280
images with and without `torch.set_flush_denormal(True)`, alternating, three times each:

    PYTHONPATH=. python benchmarks/denormal_probe.py sample_data/train --epochs 3
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from bsd_audit import api
from bsd_audit.config import resolve_config
from bsd_audit.training.loops import new_model, supervised_epoch
from bsd_audit.training.progress import Progress


def denormals(model: torch.nn.Module, opt: torch.optim.Optimizer) -> tuple[int, int]:
    tiny = torch.finfo(torch.float32).tiny
    tensors = list(model.parameters()) + [v for state in opt.state.values() for v in state.values()
                                          if torch.is_tensor(v) and v.dim() > 0]
    magnitudes = [t.detach().abs() for t in tensors]
    found = sum(int(((a > 0) & (a < tiny)).sum()) for a in magnitudes)
    return found, sum(t.numel() for t in tensors)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--epochs", type=int, default=3, help="training before the timings")
    args = ap.parse_args()
    rt, ds, norm, cfg, _ = api.prepare(args.data, resolve_config("cpu", {"precision": "fp32"}), Progress())
    torch.manual_seed(0)
    model = new_model(cfg, ds.num_classes, rt)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.warmup_lr)
    gen = rt.generator(0)

    def epoch(indices: torch.Tensor) -> None:
        supervised_epoch(model, opt, ds, indices, norm, cfg, rt, gen)

    every = torch.arange(len(ds), device=rt.device)
    for _ in range(args.epochs):
        epoch(every)
    found, total = denormals(model, opt)
    print(f"denormal values in the weights and Adam state after {args.epochs} epochs: {found:,} of {total:,}")
    subset = every[:1280]
    for trial in range(3):
        for flush in (False, True):
            torch.set_flush_denormal(flush)
            t0 = time.perf_counter()
            epoch(subset)
            print(f"trial {trial}, flush_denormal={flush}: {len(subset) / (time.perf_counter() - t0):,.0f} images/s")
    torch.set_flush_denormal(False)


if __name__ == "__main__":
    main()
