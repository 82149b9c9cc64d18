"""Training a model on a finished split (train-clean) or on all data as labelled (the baseline).

Three modes:
  mixmatch    the purified model, as BSD trains its main model: clean pool labelled, poison pool
              unlabelled (labels discarded, so the trigger -> target association is never taught),
              its guesses aligned to the poison pool's class shares, the target's left as guessed
              (config purify_align)
  supervised  cross-entropy on the clean pool alone (simpler, loses the poison pool's images)
  baseline    cross-entropy on every sample as labelled: the no-defence model DER is measured against

The state between two epochs (PurifyState) goes to the caller's ``maybe_checkpoint``; a run given
that state back as ``resume`` ends with the same weights as a run that never stopped (same device).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..config import Config
from ..data import ImageDataset, Normalizer
from ..training.loops import check_finite, new_model, predict, restore_optimizer, supervised_epoch
from ..training.progress import Progress
from ..training.runtime import Runtime
from .mixmatch import GuessAlignment, mixmatch_epoch

MODES = ("mixmatch", "supervised", "baseline")


@dataclass
class PurifyResult:
    model: torch.nn.Module
    history: list[dict]  # per epoch: {"epoch", "loss"}
    resumed_from: int  # epochs read from a checkpoint (0 = fresh start)


@dataclass
class PurifyState:
    """The training loop between two epochs: what a checkpoint keeps (artifacts/checkpoint.py)."""

    epoch: int  # epochs completed
    model: dict  # state_dict
    optimizer: dict
    history: list[dict]
    guess_marginal: np.ndarray | None = None  # GuessAlignment's running mean (None: no alignment)


def unlabelled_prior(labels: np.ndarray, clean: np.ndarray, listed: np.ndarray | None, num_classes: int) -> np.ndarray | None:
    """The class shares the purified model's guesses on the unlabelled pool are aligned to
    (config purify_align, docs/decisions/0035-purify-guess-alignment.md): the pool's own label counts,
    the suspicious list left out (a listed image's label is the attacker's), plus one per class so that
    no class is ruled out. Only the counts are used; no unlabelled image is trained on its label."""
    pool = ~clean if listed is None else ~clean & ~listed
    if not pool.any():
        return None
    counts = np.bincount(labels[pool], minlength=num_classes).astype(np.float64) + 1.0
    return counts / counts.sum()


def train_model(ds: ImageDataset, norm: Normalizer, cfg: Config, rt: Runtime, mode: str,
                clean: np.ndarray | None, gen: torch.Generator, rng: np.random.Generator,
                progress: Progress | None = None, init_state: dict | None = None, resume: PurifyState | None = None,
                maybe_checkpoint: Callable[[PurifyState], None] = lambda state: None,
                guess_prior: np.ndarray | None = None, target: int = -1) -> PurifyResult:
    """Train for ``cfg.purify_epochs`` epochs in ``mode``. ``clean`` is the split's clean-pool mask
    (None for the baseline). ``init_state``: weights to start from (the split's main model) instead
    of a new model's. ``resume`` continues from a checkpointed state (``gen`` and ``rng`` restored by
    the caller); ``maybe_checkpoint`` is called with the state at the end of every epoch.
    ``guess_prior`` (``unlabelled_prior``): the class shares MixMatch's guesses are aligned to;
    ``target`` (the split's target label, -1 for none): the class left out of the alignment."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: choose one of {', '.join(MODES)}")
    progress = progress or Progress()
    model = new_model(cfg, ds.num_classes, rt)
    if init_state is not None:
        model.load_state_dict(init_state)
    lr_field = "mixmatch_lr" if mode == "mixmatch" else "warmup_lr"
    opt = torch.optim.Adam(model.parameters(), lr=getattr(cfg, lr_field))
    history: list[dict] = []
    start = 0
    if resume is not None:
        model.load_state_dict(resume.model)
        restore_optimizer(opt, resume.optimizer, getattr(cfg, lr_field))
        history, start = list(resume.history), resume.epoch

    if mode == "baseline":
        train_idx = torch.arange(len(ds), device=rt.device)
    else:
        train_idx = torch.from_numpy(np.flatnonzero(clean)).to(rt.device)
        if len(train_idx) == 0:
            raise ValueError("the split's clean pool is empty: nothing to train on")
    poison_idx = None if clean is None else torch.from_numpy(np.flatnonzero(~clean)).to(rt.device)
    semi = mode == "mixmatch" and len(poison_idx) > 0  # else supervised, baseline, or nothing unlabelled
    align = None
    if semi and guess_prior is not None:
        if resume is not None and resume.guess_marginal is not None:
            marginal = torch.from_numpy(resume.guess_marginal)
        else:  # the starting model's own class shares on the unlabelled pool
            marginal = predict(model, ds, norm, rt, cfg.eval_batch_size, poison_idx).softmax(dim=1).mean(dim=0)
        align = GuessAlignment(torch.from_numpy(guess_prior).to(rt.device), marginal.to(rt.device),
                               target if target >= 0 else None)

    progress.start(f"train-clean ({mode})", cfg.purify_epochs)
    progress.advance(start)
    rampup = cfg.purify_epochs  # λ_u reaches its full value at the last epoch, as ASD's ramp over the run
    # MixMatch draws batches from endless streams; a stream restarted on resume reshuffles from the
    # restored generator, so resumed and uninterrupted runs draw the same batches.
    for epoch in range(start, cfg.purify_epochs):
        if semi:
            loss = mixmatch_epoch(model, opt, ds, train_idx, poison_idx, norm, cfg, rt, gen, rng, epoch, rampup, align)
        else:
            loss = supervised_epoch(model, opt, ds, train_idx, norm, cfg, rt, gen)
        check_finite(loss, f"train-clean ({mode})", epoch, cfg.purify_epochs, cfg, lr_field)
        history.append({"epoch": epoch, "loss": loss})
        marginal = None if align is None else align.marginal.cpu().numpy()
        maybe_checkpoint(PurifyState(epoch + 1, model.state_dict(), opt.state_dict(), history, marginal))
        progress.advance(1, note=f"loss {loss:.3f}")
    progress.finish()
    return PurifyResult(model, history, start)
