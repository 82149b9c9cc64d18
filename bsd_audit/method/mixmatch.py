"""The main model's semi-supervised step: MixMatch (Berthelot et al. 2019) as ASD's code runs it.

Labelled batch from the clean pool, unlabelled batch from the poison pool (labels discarded, so the
trigger -> target association is never taught). Details (docs/method.md): K augmentations of the
unlabelled batch; the guessed label is the sharpened mean softmax, computed without gradients;
mixup over the concatenation [labelled, unlabelled_1..K] with λ' = max(λ, 1 - λ); L_u is the mean
squared error over batch and classes; the unsupervised weight ramps linearly per iteration.
train-clean may align the guesses to the unlabelled pool's class shares (GuessAlignment).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config
from ..data import ImageDataset, Normalizer, augment
from ..training.distributed import mean_across, shard, training_view
from ..training.loops import Stream
from ..training.runtime import Runtime


def sharpen(p: torch.Tensor, temperature: float) -> torch.Tensor:
    p = p.pow(1.0 / temperature)
    return p / p.sum(dim=1, keepdim=True)


def unsupervised_weight(epoch: int, iteration: int, iterations: int, lambda_u: float, rampup: int) -> float:
    """λ_u · clip((epoch + iteration / iterations) / rampup, 0, 1)."""
    return lambda_u * float(np.clip((epoch + iteration / iterations) / rampup, 0.0, 1.0))


class GuessAlignment:
    """Distribution alignment of the guessed labels (ReMixMatch, Berthelot et al. 2020): each guess is
    scaled by prior / marginal and renormalised before sharpening. ``prior``: the class shares the
    unlabelled pool should have; ``marginal``: a running mean of the guesses (updated every step,
    device tensor, kept in train-clean's checkpoint). Without it a model that favours a large class
    guesses that class for the small classes' unlabelled images and then learns its own guess.
    ``target``: a class left out of the alignment, its guessed share kept as the model gives it and
    the other classes aligned among themselves. The prior counts the target's labels, and the poison
    the suspicious list missed carries them: raising the target's guesses towards that count would
    teach honest images of other classes the attacker's label; only ever lowering them feeds back
    (the model learns the lowered guesses, its marginal falls, the guesses are lowered again)."""

    MOMENTUM = 0.95  # about the last 20 batches: short runs need the correction to follow the model

    def __init__(self, prior: torch.Tensor, marginal: torch.Tensor, target: int | None = None):
        self.prior = prior.float()
        self.marginal = marginal.float().clone()
        self.target = target

    def __call__(self, p: torch.Tensor) -> torch.Tensor:
        self.marginal.mul_(self.MOMENTUM).add_(mean_across(p.mean(dim=0)), alpha=1.0 - self.MOMENTUM)
        q = p * (self.prior / self.marginal.clamp_min(1e-6))
        if self.target is None:
            return q / q.sum(dim=1, keepdim=True).clamp_min(1e-12)
        q[:, self.target] = 0.0
        q = q / q.sum(dim=1, keepdim=True).clamp_min(1e-12) * (1.0 - p[:, self.target:self.target + 1])
        q[:, self.target] = p[:, self.target]
        return q


def mixmatch_step(model: nn.Module, opt: torch.optim.Optimizer, ds: ImageDataset, idx_l: torch.Tensor,
                  idx_u: torch.Tensor, norm: Normalizer, cfg: Config, rt: Runtime, gen: torch.Generator,
                  rng: np.random.Generator, weight_u: float, align: GuessAlignment | None = None) -> torch.Tensor:
    """One MixMatch update on the global batches ``idx_l``, ``idx_u``; under torchrun each rank
    takes its share of both (training/distributed.py). ``align`` aligns the guesses before they are
    sharpened. Returns the loss as a device tensor (no host sync here)."""
    C = ds.num_classes
    n_l, n_u = len(idx_l), len(idx_u)
    rows_l, rows_u = shard(n_l), shard(n_u)
    idx_l, idx_u = idx_l[rows_l], idx_u[rows_u]
    def aug(idx, share):  # draws for the global batch, this rank's rows of them
        return norm(augment(ds.images[idx], gen, cfg.translate_px, cfg.aug_flip, share))

    x_l = aug(idx_l, (n_l, rows_l))
    y_l = F.one_hot(ds.labels[idx_l], C).float()
    x_u = [aug(idx_u, (n_u, rows_u)) for _ in range(cfg.mixmatch_K)]
    model.train()  # label guesses use train-mode batch norm, as MixMatch's code does
    with torch.no_grad():
        with rt.autocast():
            p = sum(torch.softmax(model(x).float(), dim=1) for x in x_u) / cfg.mixmatch_K
        if align is not None:
            p = align(p)
        q = sharpen(p, cfg.mixmatch_temperature)
    all_x = torch.cat([x_l, *x_u])
    all_y = torch.cat([y_l, *([q] * cfg.mixmatch_K)])
    lam = float(rng.beta(cfg.mixmatch_mixup_alpha, cfg.mixmatch_mixup_alpha))
    lam = max(lam, 1.0 - lam)  # keep each mixed sample closer to its own first input
    # The mixing partner is drawn for the global batch size, so every rank's generator stays in
    # step; a rank holding fewer rows mixes within them (the order of the draw's first values).
    n_all = n_l + cfg.mixmatch_K * n_u
    perm = torch.randperm(n_all, device=all_x.device, generator=gen)
    if len(all_x) < n_all:
        perm = torch.argsort(perm[:len(all_x)])
    mixed_x = lam * all_x + (1 - lam) * all_x[perm]
    mixed_y = lam * all_y + (1 - lam) * all_y[perm]
    n_local = len(idx_l)
    with rt.autocast():
        logits = training_view(model)(mixed_x).float()
    loss_x = -(F.log_softmax(logits[:n_local], dim=1) * mixed_y[:n_local]).sum(dim=1).mean()
    loss_u = F.mse_loss(torch.softmax(logits[n_local:], dim=1), mixed_y[n_local:])
    loss = loss_x + weight_u * loss_u
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


def mixmatch_epoch(model: nn.Module, opt: torch.optim.Optimizer, ds: ImageDataset, labelled_idx: torch.Tensor,
                   unlabelled_idx: torch.Tensor, norm: Normalizer, cfg: Config, rt: Runtime, gen: torch.Generator,
                   rng: np.random.Generator, epoch: int, rampup: int,
                   align: GuessAlignment | None = None) -> float:
    """``cfg.mixmatch_iterations`` MixMatch steps, batches drawn from endless streams over the two
    pools (an exhausted pool restarts, as ASD does); λ_u ramps over ``rampup`` epochs. Returns the
    mean loss (one host sync per epoch)."""
    labelled = Stream(labelled_idx, cfg.mixmatch_batch_size, gen)
    unlabelled = Stream(unlabelled_idx, cfg.mixmatch_batch_size, gen)
    total = torch.zeros((), device=rt.device)
    for it in range(cfg.mixmatch_iterations):
        w = unsupervised_weight(epoch, it, cfg.mixmatch_iterations, cfg.mixmatch_lambda_u, rampup)
        total += mixmatch_step(model, opt, ds, labelled.next(), unlabelled.next(), norm, cfg, rt, gen, rng, w,
                               align)
    return float(mean_across(total / cfg.mixmatch_iterations))
