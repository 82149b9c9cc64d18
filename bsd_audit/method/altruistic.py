"""The altruistic model g_φ: trained on all of D, it fits the backdoor early and on purpose.

Warm-up (App. B lines 5-11): Adam, cross-entropy with LGA, so that poison sinks to the lowest
losses. Afterwards (Algorithm 1 lines 40-41): plain cross-entropy on all of D until T2, then frozen.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config
from ..data import ImageDataset, Normalizer
from ..training.loops import new_model, train_epoch
from ..training.runtime import Runtime
from .losses import lga_loss


def new_altruistic(cfg: Config, num_classes: int, rt: Runtime) -> tuple[nn.Module, torch.optim.Optimizer]:
    model = new_model(cfg, num_classes, rt, cfg.altruistic_net)
    return model, torch.optim.Adam(model.parameters(), lr=cfg.altruistic_lr)


def altruistic_epoch(model: nn.Module, opt: torch.optim.Optimizer, ds: ImageDataset, norm: Normalizer,
                     cfg: Config, rt: Runtime, gen: torch.Generator, lga: bool, on_batch=None) -> float:
    """One pass over all of D; ``lga`` selects the warm-up objective."""
    every = torch.arange(len(ds), device=rt.device)
    if lga and cfg.lga_mode == "sample":
        def reduce(ce):
            return lga_loss(ce, cfg.lga_gamma)
    elif lga and cfg.lga_mode == "batch":
        def reduce(ce):
            return lga_loss(ce.mean()[None], cfg.lga_gamma)
    else:
        def reduce(ce):
            return ce.mean()
    return train_epoch(model, opt, ds, every, lambda logits, y: F.cross_entropy(logits, y, reduction="none"),
                       reduce, norm, cfg, rt, gen, cfg.altruistic_batch_size, on_batch, cfg.altruistic_augment)
