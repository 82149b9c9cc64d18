"""Algorithm 1: the BSD stages in order, with pool updates once per epoch.

Epochs T are counted over the whole run (docs/method.md):
  [0, T1)                         main model warm-up on D_nt (for OSS); g_φ keeps training on D
  T1                              pool initialisation: OSS ∩ ALS (eq. 3)
  [T1, T1 + init_fixed_epochs)    MixMatch on the fixed initial pools
  [T1 + init_fixed_epochs, T2)    pools by class completion on the indicator I (eqs. 8, 9, 11)
  [T2, T3)                        class completion + selective drop (eq. 10); g_φ frozen
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from ..config import Config
from ..data import ImageDataset, Normalizer
from ..training.distributed import broadcast_mask
from ..training.loops import check_finite, new_model, predict, restore_optimizer, supervised_epoch
from ..training.overlap import overlap_enabled, side_by_side, side_generator
from ..training.progress import Progress
from ..training.runtime import Runtime
from .altruistic import altruistic_epoch, new_altruistic
from .als import als_split, top_share
from .losses import sce_loss
from .mixmatch import mixmatch_epoch
from .oss import oss_split
from .pools import alpha_schedule, class_completion, indicator, init_pools, selective_drop, target_keep, trigger_keep_score
from .target import TargetEstimate
from .verdict import coherent_classes, evidence_of


@dataclass
class EpochRecord:
    epoch: int
    stage: str  # warmup | init | completion | drop
    alpha_T: float
    clean_size: int
    clean_per_class: list[int]
    main_loss: float
    altruistic_loss: float
    poison_in_clean: int = -1  # -1 when no ground truth was given
    poison_recall: float = float("nan")


@dataclass
class SplitResult:
    target: int
    oss_scores: np.ndarray  # S(x) for D_t, NaN elsewhere
    als_scores: np.ndarray  # L_sce of g_φ after warm-up (high = clean)
    indicator: np.ndarray  # final I(x, y) (high = clean); NaN if the run stopped before stage 2
    clean_oss: np.ndarray
    clean_als: np.ndarray
    clean_init: np.ndarray
    clean: np.ndarray  # final clean pool mask
    history: list[EpochRecord] = field(default_factory=list)
    main_state: dict = field(default_factory=dict)
    altruistic_state: dict = field(default_factory=dict)
    # the final main model's view of every sample: its predicted class and the probability it gives the
    # sample's label (it never learned the trigger, so poison is predicted as its true class)
    main_pred: np.ndarray | None = None
    main_label_prob: np.ndarray | None = None


@dataclass
class BSDState:
    """Algorithm 1 between two epochs: what a checkpoint keeps so that the run continues as if it had
    never stopped (artifacts/checkpoint.py). The generators' states are kept beside it."""

    epoch: int  # epochs T completed
    models: dict[str, dict]  # main, altruistic: state_dicts
    optimizers: dict[str, dict]  # warmup, mixmatch (main model), altruistic
    pools: dict[str, np.ndarray | None]  # POOL_NAMES; None until the pool exists
    history: list[EpochRecord]


POOL_NAMES = ("clean", "clean_init", "clean_oss", "clean_als", "oss_scores", "indicator", "kept_target")


def _kept_target(estimate: TargetEstimate, labels: np.ndarray, target: int, cfg: Config) -> np.ndarray | None:
    """The target-class samples that stay clean throughout (config target_keep, docs/decisions/0008-target-keep.md)."""
    if cfg.target_keep == "off":
        return None
    if cfg.target_keep == "trigger" and _trigger_read_for(estimate, labels, target):
        score = trigger_keep_score(estimate.trigger_match, labels, target)
    elif cfg.target_keep == "als" or estimate.fit_rank is None:
        score = estimate.sce  # the warm-up loss: high = clean-like
    else:
        score = estimate.fit_rank  # the fit rank: high = fitted late, unlike a shortcut
    return target_keep(score, labels, target, cfg.target_keep_share)


def _trigger_read_for(estimate: TargetEstimate, labels: np.ndarray, target: int) -> bool:
    """Whether the warm-up read a trigger's fine detail in the target class (the verdict's coherence line)."""
    if estimate.trigger_match is None or estimate.trigger_class != target:
        return False
    return target in coherent_classes(evidence_of(estimate, labels, target))


def _stage(T: int, cfg: Config) -> str:
    if T < cfg.T1:
        return "warmup"
    if T < cfg.stage2_start:
        return "init"
    return "completion" if T < cfg.T2 else "drop"


def _truth_figures(clean: np.ndarray, truth: np.ndarray | None) -> tuple[int, float]:
    if truth is None:
        return -1, float("nan")
    n_poison = int(truth.sum())
    left = int((clean & truth).sum())
    return left, (1.0 - left / n_poison) if n_poison else float("nan")


def exclude_final_list(res: SplitResult, listed: np.ndarray, labels: np.ndarray, num_classes: int,
                       truth: np.ndarray | None) -> int:
    """Take the verdict's final suspicious list out of the clean pool, and bring the last history
    record in line with the pool it now describes. Returns how many samples left the pool."""
    cut = res.clean & listed
    if not cut.any():
        return 0
    res.clean = res.clean & ~listed
    if res.history:
        rec = res.history[-1]
        rec.clean_size = int(res.clean.sum())
        rec.clean_per_class = np.bincount(labels[res.clean], minlength=num_classes).tolist()
        if truth is not None:
            rec.poison_in_clean, rec.poison_recall = _truth_figures(res.clean, truth)
    return int(cut.sum())


def run_bsd(ds: ImageDataset, norm: Normalizer, cfg: Config, rt: Runtime, estimate: TargetEstimate,
            target: int, gen: torch.Generator, rng: np.random.Generator, truth: np.ndarray | None = None,
            progress: Progress | None = None, resume: BSDState | None = None,
            maybe_checkpoint: Callable[[BSDState], None] = lambda state: None,
            excluded: np.ndarray | None = None) -> SplitResult:
    """Run stages 1-3 given the stage-0 estimate (its warmed-up g_φ and ALS scores).

    ``target`` is the label used (ỹ_t, or the user's --target). ``truth`` is an optional boolean
    poison mask (ground truth of a benchmark), used only to record figures, never to decide.
    ``resume`` continues from a checkpointed state (``gen`` and ``rng`` restored by the caller);
    ``maybe_checkpoint`` is called with the state at the end of every epoch. ``excluded`` (the
    verdict's suspicious list) never enters the clean pool (Decision, docs/decisions/0009-exclude-suspicious.md).
    """
    progress = progress or Progress()
    C, N = ds.num_classes, len(ds)
    labels = ds.labels.cpu().numpy()
    labels_dev = ds.labels

    altruistic, alt_opt = new_altruistic(cfg, C, rt)
    main = new_model(cfg, C, rt)
    warm_opt = torch.optim.Adam(main.parameters(), lr=cfg.warmup_lr)
    semi_opt = torch.optim.Adam(main.parameters(), lr=cfg.mixmatch_lr)
    optimizers = {"warmup": (warm_opt, cfg.warmup_lr), "mixmatch": (semi_opt, cfg.mixmatch_lr),
                  "altruistic": (alt_opt, cfg.altruistic_lr)}

    if resume is None:
        altruistic.load_state_dict(estimate.altruistic_state)
        if estimate.optimizer_state:
            alt_opt.load_state_dict(estimate.optimizer_state)
        clean_als = als_split(estimate.sce, cfg.beta)  # α_start = β (Decision in method.md)
        oss_scores = np.full(N, np.nan)
        clean_oss = clean_init = clean = None
        I = np.full(N, np.nan)
        kept_target = _kept_target(estimate, labels, target, cfg)
        history: list[EpochRecord] = []
        start = 0
    else:
        main.load_state_dict(resume.models["main"])
        altruistic.load_state_dict(resume.models["altruistic"])
        for name, (opt, lr) in optimizers.items():
            restore_optimizer(opt, resume.optimizers[name], lr)
        clean, clean_init, clean_oss, clean_als, oss_scores, I, kept_target = (resume.pools[k] for k in POOL_NAMES)
        history, start = list(resume.history), resume.epoch
    nt_idx = torch.nonzero(labels_dev != target).squeeze(1)
    overlap = overlap_enabled(cfg, rt)

    def sce_of(model):
        logits = predict(model, ds, norm, rt, cfg.eval_batch_size)
        return sce_loss(logits, labels_dev, cfg.sce_alpha, cfg.sce_beta, cfg.sce_log_clip), logits.argmax(1)

    alt_read = None  # g_φ's losses and predictions at the latest pool update
    progress.start("BSD epochs", cfg.T3)
    progress.advance(start, f"resumed after epoch {start}/{cfg.T3}" if start else "")
    for T in range(start, cfg.T3):
        stage = _stage(T, cfg)
        alpha_T = alpha_schedule(T, cfg.T1, cfg.T2, cfg.alpha, cfg.beta, cfg.init_fixed_epochs)
        # ---- pools for this epoch
        if T == cfg.T1:
            _, feats = predict(main, ds, norm, rt, cfg.eval_batch_size, with_features=True)
            oss_scores, clean_oss = oss_split(feats, labels_dev, target, C, cfg.beta, cfg.oss_distance, cfg.oss_normalize)
            clean_init = init_pools(clean_als, clean_oss, cfg.init_combine)
            clean = clean_init.copy()
            if excluded is not None:
                clean &= ~excluded
            clean = broadcast_mask(clean)  # under torchrun: decided once, on rank 0
            if cfg.stop_after_init:  # the quick gating mode: the initial pools are the answer
                left, recall = _truth_figures(clean, truth)
                history.append(EpochRecord(T, "init", alpha_T, int(clean.sum()),
                                           np.bincount(labels[clean], minlength=C).tolist(), float("nan"),
                                           float("nan"), left, recall))
                progress.advance(cfg.T3 - T, "stopped after pool initialisation (stop_after_init)")
                break
        elif T >= cfg.stage2_start:
            sce_main, pred_main = sce_of(main)
            if T <= cfg.T2 or alt_read is None:  # g_φ trains until T2, then is frozen: read once more
                alt_read = sce_of(altruistic)
            sce_alt, pred_alt = alt_read
            I = indicator(sce_alt.cpu().numpy(), sce_main.cpu().numpy())
            clean = class_completion(I, labels, C, alpha_T, cfg.completion_scope, target) if cfg.class_completion else top_share(I, alpha_T)
            if stage == "drop" and cfg.selective_drop:
                clean = selective_drop(clean, pred_main.cpu().numpy(), pred_alt.cpu().numpy(), target)
            if kept_target is not None:  # after the drop: these are exempt from it
                clean |= kept_target
            if excluded is not None:  # a listed sample looks like a trigger shortcut: never clean
                clean &= ~excluded
            clean = broadcast_mask(clean)
        # ---- the two models' updates: independent within an epoch, so they may run at once
        alt_gen = side_generator(gen, rt)  # drawn every epoch, overlap or not: the same split either way

        def main_update() -> float:
            if stage == "warmup":
                loss = supervised_epoch(main, warm_opt, ds, nt_idx, norm, cfg, rt, gen)
                return check_finite(loss, "main model warm-up", T, cfg.T3, cfg, "warmup_lr")
            loss = _mixmatch_epoch(main, semi_opt, ds, clean, norm, cfg, rt, gen, rng, T)
            return check_finite(loss, f"MixMatch ({stage} stage)", T, cfg.T3, cfg, "mixmatch_lr")

        def altruistic_update() -> float:  # Algorithm 1 lines 40-41: plain CE on D until T2, then frozen
            if T >= cfg.T2:
                return float("nan")
            loss = altruistic_epoch(altruistic, alt_opt, ds, norm, cfg, rt, alt_gen, lga=False)
            return check_finite(loss, "altruistic model", T, cfg.T3, cfg, "altruistic_lr")

        main_loss, alt_loss = side_by_side(main_update, altruistic_update, rt, overlap and T < cfg.T2)
        if clean is not None:
            left, recall = _truth_figures(clean, truth)
            per_class = np.bincount(labels[clean], minlength=C).tolist()
            history.append(EpochRecord(T, stage, alpha_T, int(clean.sum()), per_class, main_loss, alt_loss, left, recall))
            note = f"clean pool {int(clean.sum())}/{N}" + (f", poison left in it {left}" if left >= 0 else "")
        else:
            history.append(EpochRecord(T, stage, alpha_T, 0, [0] * C, main_loss, alt_loss))
            note = f"warm-up on D_nt, loss {main_loss:.3f}"
        pools = dict(zip(POOL_NAMES, (clean, clean_init, clean_oss, clean_als, oss_scores, I, kept_target)))
        maybe_checkpoint(BSDState(T + 1, {"main": main.state_dict(), "altruistic": altruistic.state_dict()},
                                  {name: opt.state_dict() for name, (opt, _) in optimizers.items()}, pools, history))
        progress.advance(1, f"epoch {T + 1}/{cfg.T3} [{stage}] {note}")

    if clean is None:  # T3 <= T1 is refused by validate(); kept for library callers
        raise RuntimeError("the run ended before pool initialisation")
    probs = predict(main, ds, norm, rt, cfg.eval_batch_size).float().softmax(1)
    return SplitResult(target, oss_scores, estimate.sce, I, clean_oss, clean_als, clean_init, clean, history,
                       {k: v.detach().cpu() for k, v in main.state_dict().items()},
                       {k: v.detach().cpu() for k, v in altruistic.state_dict().items()},
                       main_pred=probs.argmax(1).cpu().numpy(),
                       main_label_prob=probs.gather(1, labels_dev[:, None])[:, 0].cpu().numpy())


def _mixmatch_epoch(model, opt, ds, clean: np.ndarray, norm, cfg: Config, rt: Runtime, gen, rng, T: int) -> float:
    clean_idx = torch.from_numpy(np.flatnonzero(clean)).to(rt.device)
    poison_idx = torch.from_numpy(np.flatnonzero(~clean)).to(rt.device)
    if len(clean_idx) == 0 or len(poison_idx) == 0:
        raise RuntimeError(f"epoch {T}: a pool is empty (clean {len(clean_idx)}, poison {len(poison_idx)}); "
                           "check beta/alpha for this dataset size")
    return mixmatch_epoch(model, opt, ds, clean_idx, poison_idx, norm, cfg, rt, gen, rng, T, cfg.mixmatch_rampup)
