"""Stage 0: the target label ỹ_t (App. B lines 5-13 and App. E.3).

Two independent estimates from the altruistic warm-up:
- the LGA vote: the most frequent label among the ``isolation_share`` lowest-loss samples;
- the second-likely estimate: per epoch, the most frequent second-most-likely class over D, and
  the majority of those per-epoch answers.
The LGA vote decides; a disagreement is reported. The vote share and the loss gap of the isolated
samples are kept as evidence, so a weak vote (no attack at all) can be told from a real one.

Not in the paper: ``altruistic_warmups`` independent warm-ups (their own initialisation, batch
order) pool their evidence. Each sample's window losses and fit ranks are averaged over all of them,
and the vote is taken on the pooled losses. At a few thousand images one warm-up's fit of a 2-3 %
trigger depends on its seed; a poisoned sample is fitted early in every run, an honest one only in
some, so the average keeps the poison's tail and narrows the honest spread (docs/decisions/0013-pooled-warmups.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..config import Config, warmups_for
from ..data import ImageDataset, Normalizer
from ..training.distributed import sum_across_
from ..training.loops import check_finite, restore_optimizer
from ..training.runtime import Runtime
from .altruistic import altruistic_epoch, new_altruistic
from .losses import sce_loss


@dataclass
class TargetEstimate:
    target: int  # ỹ_t, from the LGA vote
    votes: np.ndarray  # per-class count among the isolated samples
    confidence: float  # winner's share of the vote
    isolated: np.ndarray  # indices of the isolated (lowest-loss) samples
    isolated_loss_mean: float
    loss_median: float
    second_likely_per_epoch: np.ndarray  # per warm-up epoch, the most frequent second-likely class
    second_likely_target: int  # majority over epochs (ỹ_t')
    ce: np.ndarray  # per-sample CE of g_φ after warm-up
    sce: np.ndarray  # per-sample L_sce of g_φ after warm-up (the ALS scores)
    fit_rank: np.ndarray | None = None  # per-sample mean rank of its loss over the window epochs (0 = fitted best)
    # the held-out check's label probability per sample (NaN where its model trained), and the share of
    # each class it held out (method/holdout.py)
    holdout_prob: np.ndarray | None = None
    holdout_called: np.ndarray | None = None  # the class it calls each held-out sample among the others (-1: trained on)
    holdout_called_prob: np.ndarray | None = None  # that class's probability
    holdout_variety: np.ndarray | None = None  # per class, its unrecognised group's pictures' spread (holdout.group_variety)
    holdout_share: float = 0.5
    # trigger coherence (method/coherence.py): per class, its unrecognised group's coherence z, likeness
    # and size; per sample, the match with the most coherent not-alike group's fine detail, and that class
    coherence_z: np.ndarray | None = None
    coherence_likeness: np.ndarray | None = None
    coherence_size: np.ndarray | None = None
    coherence_group: np.ndarray | None = None  # which group each class's reading is of (coherence.GROUP_NAMES; -1 none)
    trigger_match: np.ndarray | None = None
    trigger_class: int = -1
    copy_of: np.ndarray | None = None  # per sample, its class's first identical picture (ImageDataset.copy_of)
    altruistic_state: dict = field(default_factory=dict)  # weights of g_φ after warm-up
    optimizer_state: dict = field(default_factory=dict)
    history: list = field(default_factory=list)  # per-epoch mean LGA objective

    @property
    def agree(self) -> bool:
        return self.target == self.second_likely_target

    @property
    def loss_gap(self) -> float:
        """Median loss minus the isolated samples' mean loss: large when a trigger was fitted."""
        return self.loss_median - self.isolated_loss_mean


@dataclass
class WarmupState:
    """The warm-up loop between two epochs: what a checkpoint keeps so that it continues as if it had
    never stopped (artifacts/checkpoint.py). The device generator's state is kept beside it."""

    epoch: int  # epochs completed, counted over all warm-ups (run r's epoch e is r * E + e)
    model: dict  # the current warm-up's g_φ state_dict
    optimizer: dict
    sums: dict[str, torch.Tensor]  # per-sample sums over the window epochs so far, of every warm-up: ce, sce, rank
    second_per_epoch: list[int]
    history: list[float]


def lga_vote(ce: np.ndarray, labels: np.ndarray, num_classes: int, share: float):
    """Indices of the lowest-loss ``share`` of samples and their label histogram (lines 12-13).

    Ties are broken by sample index (stable sort), so the vote is deterministic."""
    k = max(1, int(round(share * len(ce))))
    isolated = np.argsort(ce, kind="stable")[:k]
    votes = np.bincount(labels[isolated], minlength=num_classes)
    return isolated, votes


def majority(values: np.ndarray, num_classes: int) -> int:
    """Most frequent value; ties go to the smallest class index."""
    return int(np.argmax(np.bincount(values, minlength=num_classes)))


def window_epochs(cfg: Config) -> int:
    """Epochs at the end of each warm-up whose losses are averaged (the last ``loss_window`` share)."""
    return max(1, int(round(cfg.loss_window * cfg.altruistic_warmup_epochs)))


def warmup_model(cfg: Config, num_classes: int, rt: Runtime, run: int):
    """g_φ and its optimiser for warm-up ``run``. Run 0 draws its initial weights from torch's global
    generator, as every model does; a later run from its own seed derived from ``cfg.seed``, so that
    the global generator is left as one warm-up leaves it and a resumed run rebuilds the same weights."""
    if run == 0:
        return new_altruistic(cfg, num_classes, rt)
    seed = int(np.random.SeedSequence([cfg.seed, run]).generate_state(1)[0])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return new_altruistic(cfg, num_classes, rt)


def detect_target(ds: ImageDataset, norm: Normalizer, cfg: Config, rt: Runtime, gen: torch.Generator,
                  progress=None, resume: WarmupState | None = None,
                  maybe_checkpoint: Callable[[WarmupState], None] = lambda state: None) -> TargetEstimate:
    """Warm up g_φ with LGA on all of D, ``warmups_for(cfg, N)`` times, and estimate ỹ_t.

    The per-sample losses that isolate poison (and feed ALS) are averaged over the last
    ``loss_window`` share of each warm-up's epochs, read off the training forward passes (no extra
    pass over D), and over the warm-ups. Decision: a single end-of-warm-up evaluation is fragile at
    small scale, where LGA makes the loss of every sample oscillate around γ from one epoch to the
    next; the average keeps what is stable, poison fitted early and kept low (measured in
    docs/decisions/0013-pooled-warmups.md). The last warm-up's g_φ is the one the split trains on.

    ``resume`` continues from a checkpointed state (``gen`` restored by the caller);
    ``maybe_checkpoint`` is called with the state at the end of every epoch.
    """
    C, N = ds.num_classes, len(ds)
    model, opt = warmup_model(cfg, C, rt, 0)  # built first always: it draws from torch's global generator
    E, runs = cfg.altruistic_warmup_epochs, warmups_for(cfg, N)
    window_start = E - window_epochs(cfg)
    sums = {name: torch.zeros(N, device=rt.device) for name in ("ce", "sce", "rank")}
    ce_sum, sce_sum, rank_sum = sums["ce"], sums["sce"], sums["rank"]
    epoch_ce, epoch_sce = torch.zeros(N, device=rt.device), torch.zeros(N, device=rt.device)
    second_per_epoch, history, start = [], [], 0
    if resume is not None:
        current = (resume.epoch - 1) // E  # the warm-up that wrote the state
        if current > 0:
            model, opt = warmup_model(cfg, C, rt, current)
        model.load_state_dict(resume.model)
        restore_optimizer(opt, resume.optimizer, cfg.altruistic_lr)
        for name, total in sums.items():
            total.copy_(torch.as_tensor(resume.sums[name]))
        second_per_epoch, history, start = list(resume.second_per_epoch), list(resume.history), resume.epoch
        if progress is not None:
            progress.advance(start, f"resumed after LGA epoch {start}/{E * runs}")
    for step in range(start, E * runs):
        run, epoch = divmod(step, E)
        if epoch == 0 and run > 0:
            model, opt = warmup_model(cfg, C, rt, run)
        counts = torch.zeros(C, device=rt.device, dtype=torch.long)
        in_window = epoch >= window_start
        # This epoch's per-sample figures, filled from the training forward passes (each sample once
        # per epoch); under torchrun each rank fills its own samples and the sums across ranks complete them.
        epoch_ce.zero_()
        epoch_sce.zero_()

        def tally(idx, logits):
            # second-likely estimate (App. E.3) from the epoch's own training logits
            counts.add_(torch.bincount(logits.topk(2, dim=1).indices[:, 1], minlength=C))
            if in_window:
                y = ds.labels[idx]
                epoch_ce[idx] = F.cross_entropy(logits.float(), y, reduction="none")
                epoch_sce[idx] = sce_loss(logits, y, cfg.sce_alpha, cfg.sce_beta, cfg.sce_log_clip)

        loss = altruistic_epoch(model, opt, ds, norm, cfg, rt, gen, lga=True, on_batch=tally)
        history.append(check_finite(loss, "altruistic warm-up (LGA)", step, E * runs, cfg, "altruistic_lr"))
        sum_across_(counts, *((epoch_ce, epoch_sce) if in_window else ()))
        second_per_epoch.append(int(counts.argmax()))
        if in_window:
            ce_sum += epoch_ce
            sce_sum += epoch_sce
            # Rank of each sample's loss within the epoch, averaged over the window: LGA makes raw
            # losses swing from one epoch to the next, ranks are stable (the suspicion score, method/verdict.py)
            rank_sum += torch.argsort(torch.argsort(epoch_ce)).float() / max(N - 1, 1)
        maybe_checkpoint(WarmupState(step + 1, model.state_dict(), opt.state_dict(), sums, second_per_epoch, history))
        if progress is not None:
            where = f"LGA warm-up {run + 1}/{runs}, epoch {epoch + 1}/{E}" if runs > 1 else f"LGA epoch {epoch + 1}/{E}"
            progress.advance(1, f"{where}: objective {history[-1]:.3f}")
    counted = window_epochs(cfg) * runs  # window epochs over all warm-ups
    ce = (ce_sum / counted).cpu().numpy()
    sce = (sce_sum / counted).cpu().numpy()
    fit_rank = (rank_sum / counted).cpu().numpy()
    labels = ds.labels.cpu().numpy()
    isolated, votes = lga_vote(ce, labels, C, cfg.isolation_share)
    target = int(np.argmax(votes))
    seconds = np.array(second_per_epoch, dtype=np.int64)
    return TargetEstimate(
        target=target, votes=votes, confidence=float(votes[target] / votes.sum()), isolated=isolated,
        isolated_loss_mean=float(ce[isolated].mean()), loss_median=float(np.median(ce)),
        second_likely_per_epoch=seconds, second_likely_target=majority(seconds, C), ce=ce, sce=sce, fit_rank=fit_rank,
        holdout_prob=np.full(N, np.nan),  # filled by the held-out check (method/holdout.py) when it runs
        holdout_called=np.full(N, -1, dtype=np.int64), holdout_called_prob=np.full(N, np.nan),
        holdout_variety=np.full(C, np.nan), coherence_z=np.full(C, np.nan), coherence_likeness=np.full(C, np.nan),
        coherence_size=np.full(C, np.nan), coherence_group=np.full(C, -1, dtype=np.int64), trigger_match=np.full(N, np.nan),
        altruistic_state={k: v.detach().clone() for k, v in model.state_dict().items()},
        optimizer_state=opt.state_dict(), history=history,
    )
