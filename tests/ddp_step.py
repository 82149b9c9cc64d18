"""Run by test_split_runs_under_torchrun.py, once as one process and once under torchrun: a few
epochs of the tool's own supervised loop and MixMatch epoch on a small random dataset, with a model
that has no batch norm (whose per-rank statistics are the one thing data parallelism may change),
then per-sample predictions. The supervised epochs must give the same weights in any number of
ranks; MixMatch mixes each sample with a partner from its own rank's rows, so there only the ranks'
agreement with each other is exact. Rank 0 saves the weights and predictions to the .npz given as argv[1].
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bsd_audit.config import Config
from bsd_audit.data import ImageDataset, Normalizer
from bsd_audit.training.distributed import is_main
from bsd_audit.training.loops import predict, train_epoch
from bsd_audit.training.runtime import make_runtime
from bsd_audit.method.mixmatch import mixmatch_epoch


class NoNorm(nn.Module):
    """A small conv net without batch norm, with the features/head split predict() expects."""

    def __init__(self, classes: int):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Linear(8, classes)

    def features(self, x):
        return F.adaptive_avg_pool2d(F.relu(self.conv(x)), 1).flatten(1)

    def forward(self, x):
        return self.head(self.features(x))


def main(out: Path) -> None:
    # fp32: bf16 rounds a half batch differently from a whole one, which would hide what is compared
    cfg = Config(device="cpu", threads=1, channels_last=False, mixmatch_iterations=3, mixmatch_batch_size=8,
                 precision="fp32")
    rt = make_runtime(cfg)
    torch.manual_seed(0)
    n, classes = 50, 3  # 50 with batch 16: a last batch of 2, which joins the one before it
    images = torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8)
    labels = torch.arange(n) % classes
    ds = ImageDataset(Path("."), ["a", "b", "c"], [f"{i}.png" for i in range(n)], labels, images, "x")
    norm = Normalizer([0.5] * 3, [0.25] * 3, rt.device, channels_last=False)
    model = NoNorm(classes)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    gen = rt.generator(1)
    rng = np.random.default_rng(1)
    ce = lambda z, y: F.cross_entropy(z, y, reduction="none")  # noqa: E731
    seen = torch.zeros(n)

    def count(idx, logits):
        seen.index_add_(0, idx, torch.ones(len(idx)))

    losses = []
    for _ in range(2):
        losses.append(train_epoch(model, opt, ds, torch.arange(n), ce, lambda v: v.mean(), norm, cfg, rt, gen, 16,
                                  on_batch=count))
    supervised = {f"supervised.{k}": v.detach().clone().numpy() for k, v in model.state_dict().items()}
    sup_logits, sup_feats = predict(model, ds, norm, rt, 7, with_features=True)  # 50 rows: 25 per rank, 4 batches
    clean = torch.arange(n)[: n // 2]
    losses.append(mixmatch_epoch(model, opt, ds, clean, torch.arange(n)[n // 2:], norm, cfg, rt, gen, rng, 0, 2))
    logits, feats = predict(model, ds, norm, rt, 7, with_features=True)
    # how far apart the ranks' weights are at the end (0 in one process): DDP must keep them equal
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    spread = torch.zeros(())
    if torch.distributed.is_initialized():
        torch.distributed.all_reduce(seen)
        parts = [torch.empty_like(flat) for _ in range(torch.distributed.get_world_size())]
        torch.distributed.all_gather(parts, flat)
        spread = torch.stack(parts).std(0).max()
    if is_main():
        np.savez(out, **supervised, **{k: v.detach().numpy() for k, v in model.state_dict().items()},
                 logits=logits.numpy(), feats=feats.numpy(),
                 supervised_logits=sup_logits.numpy(), supervised_feats=sup_feats.numpy(), losses=np.array(losses), seen=seen.numpy(),
                 rank_spread=spread.numpy())


if __name__ == "__main__":
    main(Path(sys.argv[1]))
