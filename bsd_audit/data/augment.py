"""Batch-level augmentation on the device (as airbench does it): no per-image Python.

A batch is a uint8 N x 3 x H x W tensor gathered from the dataset tensor by index; augmentation
and normalisation turn it into the float input of a model in a handful of tensor ops.
"""

from __future__ import annotations

import torch


class Normalizer:
    """uint8 batch -> normalised float batch, in the model's memory format and dtype."""

    def __init__(self, mean, std, device, channels_last: bool = True):
        self.stats = (list(mean), list(std))  # per channel, 0-1 scale: what a model file stores
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1) * 255
        self.channels_last = channels_last

    def __call__(self, batch_u8: torch.Tensor) -> torch.Tensor:
        x = (batch_u8.float() - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def augment(batch_u8: torch.Tensor, generator: torch.Generator, translate: int = 4, flip: bool = True,
            share: tuple[int, slice] | None = None) -> torch.Tensor:
    """Random translation (reflect padding, random crop) and horizontal flip, per sample.

    ``generator`` lives on the batch's device so the draw is reproducible there. ``share=(n, mine)``
    says the batch is the rows ``mine`` of a global batch of ``n`` (data-parallel training,
    training/distributed.py): the draws are made for all ``n`` and this batch takes its rows of them,
    so every rank's generator stays in step and each sample is augmented as in one process.
    """
    n, _, h, w = batch_u8.shape
    total, mine = share if share is not None else (n, slice(0, n))
    dev = batch_u8.device
    out = batch_u8
    if translate > 0:
        # reflect-pad needs a float tensor; uint8 values are exact in float32
        padded = torch.nn.functional.pad(batch_u8.float(), (translate,) * 4, mode="reflect")
        dy = torch.randint(0, 2 * translate + 1, (total,), device=dev, generator=generator)[mine]
        dx = torch.randint(0, 2 * translate + 1, (total,), device=dev, generator=generator)[mine]
        rows = (dy[:, None] + torch.arange(h, device=dev)[None, :])  # n x h
        cols = (dx[:, None] + torch.arange(w, device=dev)[None, :])  # n x w
        idx_n = torch.arange(n, device=dev)[:, None, None]
        # padded[n, c, rows, cols] for every sample at once -> n x h x w x c
        crop = padded.permute(0, 2, 3, 1)[idx_n, rows[:, :, None], cols[:, None, :]]
        out = crop.permute(0, 3, 1, 2).to(torch.uint8)
    if flip:
        mask = torch.rand(total, device=dev, generator=generator)[mine] < 0.5
        out = torch.where(mask[:, None, None, None], out.flip(3), out)
    return out
