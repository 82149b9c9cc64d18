"""Batch loops over the on-device dataset: one supervised epoch, and per-sample evaluation."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config
from ..data import ImageDataset, Normalizer, augment
from ..errors import TrainingDivergedError
from .nets import build_model
from .distributed import gather_rows, mean_across, shard, sync_buffers, training_view, world
from .runtime import Runtime

PerSampleLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Batches:
    """Shuffled index batches over a subset, drawn from a device generator."""

    indices: torch.Tensor
    batch_size: int
    generator: torch.Generator
    drop_last: bool = False

    def __iter__(self):
        n = len(self.indices)
        order = self.indices[torch.randperm(n, device=self.indices.device, generator=self.generator)]
        stop = n - n % self.batch_size if self.drop_last and n >= self.batch_size else n
        starts = list(range(0, stop, self.batch_size))
        # A short last batch (under half a batch) joins the batch before it: every sample is still
        # seen once per epoch, a batch always has rows for every rank (train-mode batch norm needs
        # two per rank), and the batches are the same for any number of ranks up to batch_size / 4.
        if len(starts) > 1 and stop - starts[-1] < max(self.batch_size // 2, 2 * world().size):
            starts.pop()
        for i, start in enumerate(starts):
            yield order[start:starts[i + 1] if i + 1 < len(starts) else stop]


class Stream:
    """An endless stream of batches over a pool: when a pass is exhausted a new shuffle starts
    (MixMatch draws labelled and unlabelled batches this way, as ASD does)."""

    def __init__(self, indices: torch.Tensor, batch_size: int, generator: torch.Generator):
        self.indices, self.batch_size, self.generator = indices, batch_size, generator
        self._it = iter(())

    def next(self) -> torch.Tensor:
        batch = next(self._it, None)
        if batch is None:
            self._it = iter(Batches(self.indices, self.batch_size, self.generator, drop_last=True))
            batch = next(self._it)
        return batch


def new_model(cfg: Config, num_classes: int, rt: Runtime, net: tuple[str, float] | None = None) -> nn.Module:
    """The main model, or the net ``(arch, width)`` when given (the altruistic model's)."""
    arch, width = net or (cfg.arch, cfg.width)
    if cfg.image_size == "auto":  # the working size is chosen from the data (api.prepare) before any model exists
        raise ValueError("new_model needs the working size: pass the config api.prepare returns, or set image_size")
    model = build_model(arch, num_classes, width, cfg.image_size).to(rt.device)
    if rt.channels_last and _channels_last_safe(model):
        model = model.to(memory_format=torch.channels_last)
    elif rt.channels_last:  # the batches arrive channels_last (Normalizer): train this net on contiguous ones
        model.register_forward_pre_hook(lambda _, args: tuple(a.contiguous() for a in args))
    if cfg.compile:
        # In place (nn.Module.compile), not torch.compile(model): the wrapper torch.compile returns
        # prefixes every state_dict key with `_orig_mod.`, and checkpoints and model files must load
        # into an uncompiled module. Only forward is compiled; predict's features/head stay eager.
        model.compile()
    return model


# oneDNN's channels_last backward corrupts the heap (the process aborts) when a trained convolution
# has fewer output channels than this, on an AVX2 CPU without AVX-512 (torch 2.14.1, widths 2-7 of
# resnet18 measured; 8 and up run). Such toy widths train in the contiguous format instead.
MIN_CHANNELS_LAST_CHANNELS = 8


def _channels_last_safe(model: nn.Module) -> bool:
    return all(m.out_channels >= MIN_CHANNELS_LAST_CHANNELS for m in model.modules()
               if isinstance(m, nn.Conv2d) and m.weight.requires_grad)


def train_epoch(model: nn.Module, opt: torch.optim.Optimizer, ds: ImageDataset, indices: torch.Tensor,
                loss_fn: PerSampleLoss, reduce: Callable[[torch.Tensor], torch.Tensor], norm: Normalizer,
                cfg: Config, rt: Runtime, gen: torch.Generator, batch_size: int,
                on_batch: Callable[[torch.Tensor, torch.Tensor], None] | None = None, augmented: bool = True) -> float:
    """One augmented pass over ``indices``. ``reduce`` turns per-sample losses into the objective
    (mean for CE, the LGA transform for the altruistic warm-up). Returns the mean objective.

    Under torchrun each rank trains on its share of every global batch (training/distributed.py);
    ``on_batch`` then sees this rank's samples only."""
    net = training_view(model)
    net.train()
    total = torch.zeros((), device=rt.device)
    steps = 0
    for batch_idx in Batches(indices, batch_size, gen):
        rows = shard(len(batch_idx))
        idx = batch_idx[rows]
        batch = ds.images[idx]
        x = norm(augment(batch, gen, cfg.translate_px, cfg.aug_flip, (len(batch_idx), rows)) if augmented else batch)
        y = ds.labels[idx]
        with rt.autocast():
            logits = net(x)
        per_sample = loss_fn(logits.float(), y)
        loss = reduce(per_sample)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if on_batch is not None:
            on_batch(idx, logits.detach())
        total += loss.detach()
        steps += 1
    return float(mean_across(total / max(steps, 1)))  # one host sync per epoch


def supervised_epoch(model: nn.Module, opt: torch.optim.Optimizer, ds: ImageDataset, indices: torch.Tensor,
                     norm: Normalizer, cfg: Config, rt: Runtime, gen: torch.Generator) -> float:
    """One augmented cross-entropy pass over ``indices`` at ``warmup_batch_size``: the main model's
    warm-up, the held-out check's training and train-clean's supervised modes. Returns the mean loss."""
    return train_epoch(model, opt, ds, indices, lambda z, y: F.cross_entropy(z, y, reduction="none"),
                       lambda v: v.mean(), norm, cfg, rt, gen, cfg.warmup_batch_size)


def check_finite(loss: float, stage: str, epoch: int, epochs: int, cfg: Config, lr_field: str) -> float:
    """Stop the run when an epoch's mean loss is NaN or infinite. Called once per epoch on the mean the
    epoch already brought to the host (no per-step sync); a non-finite step makes the mean non-finite."""
    if not math.isfinite(loss):
        lr, default = getattr(cfg, lr_field), getattr(Config(), lr_field)
        raise TrainingDivergedError(stage, epoch, epochs, loss, lr_field, lr, default if lr > default else lr / 10)
    return loss


@torch.no_grad()
def predict(model: nn.Module, ds: ImageDataset, norm: Normalizer, rt: Runtime, batch_size: int,
            indices: torch.Tensor | None = None, with_features: bool = False):
    """Eval-mode logits (float32, N x C) and optionally penultimate features for ``indices``.
    Under torchrun each rank evaluates its share and every rank gets all rows, in order."""
    model.eval()
    sync_buffers(model)
    idx_all = torch.arange(len(ds), device=rt.device) if indices is None else indices
    n = len(idx_all)
    mine = idx_all[shard(n)]
    # a rank with no rows still runs one sample, so its (empty) result has the right shape to gather
    keep = len(mine)
    if keep == 0:
        mine = idx_all[:1]
    logits, feats = [], []
    for start in range(0, len(mine), batch_size):
        idx = mine[start:start + batch_size]
        x = norm(ds.images[idx])
        with rt.autocast():
            if with_features:
                f = model.features(x)
                feats.append(f.float())
                logits.append(model.head(f).float())
            else:
                logits.append(model(x).float())
    out_logits = gather_rows(torch.cat(logits)[:keep], n)
    return (out_logits, gather_rows(torch.cat(feats)[:keep], n)) if with_features else out_logits


def restore_optimizer(opt: torch.optim.Optimizer, state: dict, lr: float) -> None:
    """Load an optimiser's saved state, at the learning rate configured now (it may have been lowered
    to continue a diverged run; otherwise it is the saved one)."""
    opt.load_state_dict(state)
    for group in opt.param_groups:
        group["lr"] = lr
