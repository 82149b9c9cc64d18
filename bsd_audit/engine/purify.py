"""Training a model on a finished split (train-clean) or on all data as labelled (the baseline).

Three modes:
  mixmatch    the purified model, as BSD trains its main model: clean pool labelled, poison pool
              unlabelled (labels discarded, so the trigger -> target association is never taught)
  supervised  cross-entropy on the clean pool alone (simpler, loses the poison pool's images)
  baseline    cross-entropy on every sample as labelled: the no-defence model DER is measured against

A checkpoint is written after every epoch; a run started again with ``resume`` continues from it
and ends with the same weights as a run that never stopped (same device).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..config import Config
from ..data import ImageDataset, Normalizer
from ..io.checkpoint import Checkpoint, check_ranks_see, epoch_delay, load_checkpoint, restore_optimizer, save_checkpoint
from ..method.mixmatch import mixmatch_epoch
from .loops import check_finite, new_model, train_epoch
from .progress import Progress
from .runtime import Runtime

MODES = ("mixmatch", "supervised", "baseline")


@dataclass
class PurifyResult:
    model: torch.nn.Module
    history: list[dict]  # per epoch: {"epoch", "loss"}
    resumed_from: int  # epochs read from a checkpoint (0 = fresh start)


def train_model(ds: ImageDataset, norm: Normalizer, cfg: Config, rt: Runtime, mode: str,
                clean: np.ndarray | None, identity: dict, checkpoint: Path | None = None, resume: bool = False,
                progress: Progress | None = None,
                after_epoch: Callable[[int], None] | None = None, init_state: dict | None = None) -> PurifyResult:
    """Train for ``cfg.purify_epochs`` epochs in ``mode``. ``clean`` is the split's clean-pool mask
    (None for the baseline). ``identity`` describes the run and must match a checkpoint to resume.
    ``after_epoch(epoch)`` runs once an epoch's checkpoint is on disk. ``init_state``: weights to
    start from (the split's main model) instead of a new model's."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: choose one of {', '.join(MODES)}")
    progress = progress or Progress()
    gen = rt.generator(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = new_model(cfg, ds.num_classes, rt)
    if init_state is not None:
        model.load_state_dict(init_state)
    lr_field = "mixmatch_lr" if mode == "mixmatch" else "warmup_lr"
    opt = torch.optim.Adam(model.parameters(), lr=getattr(cfg, lr_field))
    history: list[dict] = []
    start = 0
    if resume and checkpoint is not None and Path(checkpoint).exists():
        ck = load_checkpoint(checkpoint, cfg, ds, identity, rt.describe())
        model.load_state_dict(ck.models["model"])
        restore_optimizer(opt, ck.optimizers["model"], getattr(cfg, lr_field))
        gen.set_state(ck.torch_rng)
        rng.bit_generator.state = ck.numpy_rng
        history, start = ck.history, ck.epoch
        progress.log(f"resumed from {checkpoint} after epoch {start}"
                     + "".join(f"; {k} {a:g} -> {b:g}" for k, (a, b) in ck.changed.items()))

    check_ranks_see(checkpoint, start)
    if mode == "baseline":
        train_idx = torch.arange(len(ds), device=rt.device)
    else:
        train_idx = torch.from_numpy(np.flatnonzero(clean)).to(rt.device)
        if len(train_idx) == 0:
            raise ValueError("the split's clean pool is empty: nothing to train on")
    poison_idx = None if clean is None else torch.from_numpy(np.flatnonzero(~clean)).to(rt.device)

    progress.start(f"train-clean ({mode})", cfg.purify_epochs)
    progress.advance(start)
    rampup = cfg.purify_epochs  # λ_u reaches its full value at the last epoch, as ASD's ramp over the run
    # MixMatch draws batches from endless streams; a stream restarted on resume reshuffles from the
    # restored generator, so resumed and uninterrupted runs draw the same batches.
    for epoch in range(start, cfg.purify_epochs):
        if mode == "mixmatch" and len(poison_idx) > 0:
            loss = mixmatch_epoch(model, opt, ds, train_idx, poison_idx, norm, cfg, rt, gen, rng, epoch, rampup)
        else:  # supervised, baseline, or a split with nothing in its poison pool
            loss = train_epoch(model, opt, ds, train_idx, lambda z, y: F.cross_entropy(z, y, reduction="none"),
                               lambda v: v.mean(), norm, cfg, rt, gen, cfg.warmup_batch_size)
        check_finite(loss, f"train-clean ({mode})", epoch, cfg.purify_epochs, cfg, lr_field)
        history.append({"epoch": epoch, "loss": loss})
        if checkpoint is not None:
            save_checkpoint(checkpoint, Checkpoint(
                epoch=epoch + 1, identity=identity, models={"model": model.state_dict()},
                optimizers={"model": opt.state_dict()}, torch_rng=gen.get_state(),
                numpy_rng=rng.bit_generator.state, history=history), cfg, ds, rt.describe())
            epoch_delay()
        progress.advance(1, note=f"loss {loss:.3f}")
        if after_epoch is not None:
            after_epoch(epoch)
    progress.finish()
    return PurifyResult(model, history, start)
