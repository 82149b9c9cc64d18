"""Trigger coherence: do the pictures a class's held-out model does not recognise share fine detail
that no honest picture carries? (Not in the paper; evidence for the verdict, method/verdict.py.)

A dirty-label trigger is the same pixels put on every poisoned picture: a patch, a blended pattern, a
signal. The held-out check (method/holdout.py) finds, per class, the held-out pictures a model trained
without them does not call by their label. When those are poison, they are pictures of the other
classes with one thing in common. Their fine detail (each picture minus its 3 x 3 local mean: edges,
texture, noise, read at the working size) is otherwise unrelated from one picture to the next, so
what their fine detail shares is the trigger.

- The group: a class's held-out pictures (either quarter, copies once) whose label probability is
  under half of chance, 0.5 / K; tested from MIN_GROUP pictures.
- ``coherence``: the mean cosine between the fine detail of two of its pictures (standardised per
  pixel over the data), as a z against DRAWS draws of as many pictures of the classes the model
  called them (one of the called class per member). The 32 px calibration runs: trigger groups
  16-700, honest groups at most 4.2 where their pictures are not alike.
- ``likeness``: the same mean cosine on 16 px thumbnails. A class's own odd group (one background,
  one studio) shares fine detail too (coherence up to 11), but shares its layout more: likeness
  0.31-0.76 on those groups, 0.00-0.22 on trigger groups, whose pictures come from every class (a
  patch or a noise blend under 0.08; SIG's wave shows in the thumbnails too).
- ``trigger_match``: per picture, the cosine of its fine detail with the most coherent not-alike
  group's mean (its own contribution left out for the group's members): the trigger's direction.
  Poison reads 0.25-0.8, honest pictures about 0 (docs/decisions/0033-trigger-coherence.md).

Blind by construction to triggers that are not the same pixels on every picture (a warp, a
per-picture pattern) and to clean-label poison the held-out model recognises; the other lines of
evidence stay for those.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ..data import ImageDataset
from .holdout import THUMB, distinct, holdout_quarters

MIN_GROUP = 10  # pictures a class's unrecognised group needs to be read
GROUP_MAX = 500  # pictures of a group read, at most (a seeded draw): the matched draws cost DRAWS times as many
DRAWS = 20  # matched draws of the called classes' pictures the group's coherence is set against
LIKENESS = 0.3  # a group whose thumbnails share this much (mean cosine) is one kind of picture, not a trigger group
REFERENCE = 4000  # pictures the per-pixel standardisation is estimated from, at most
CHUNK = 256  # pictures decoded at once


class Coherence(NamedTuple):
    """Per class (NaN where not read): the group's coherence z and its likeness, and its size; per sample,
    the match with the most coherent not-alike group's fine detail (NaN when no group was read)."""

    z: np.ndarray
    likeness: np.ndarray
    size: np.ndarray
    match: np.ndarray
    match_class: int  # the class whose group gave the direction (-1: none)


def unrecognised_groups(labels: np.ndarray, fit_rank: np.ndarray, label_prob: np.ndarray, share: float,
                        copy_of: np.ndarray | None) -> dict[int, np.ndarray]:
    """Per class, its held-out pictures (copies once) called under half of chance by the held-out model."""
    k = int(labels.max()) + 1
    held = (holdout_quarters(labels, fit_rank, share) >= 0) & distinct(len(labels), copy_of)
    missed = held & np.isfinite(label_prob) & (label_prob < 0.5 / k)
    return {c: np.flatnonzero(missed & (labels == c)) for c in range(k)}


def fine_detail(x: torch.Tensor) -> torch.Tensor:
    """Each picture minus its 3 x 3 local mean: edges, texture, noise, and a trigger's pixels."""
    return x - F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)


def layout(x: torch.Tensor) -> torch.Tensor:
    """THUMB x THUMB thumbnails: what is where, without the detail."""
    return F.interpolate(x, size=(THUMB, THUMB), mode="bilinear", antialias=True, align_corners=False)


class _Units:
    """Pictures of ``ds`` seen through ``view``, standardised per pixel over a reference sample, as unit
    vectors (float32 on the data's device, in chunks; sums in float64)."""

    def __init__(self, ds: ImageDataset, view, reference: np.ndarray):
        self.ds, self.view = ds, view
        total = squares = None
        for x in self._raw(reference):
            x = x.double()
            total = x.sum(0) if total is None else total + x.sum(0)
            squares = (x * x).sum(0) if squares is None else squares + (x * x).sum(0)
        mean = total / len(reference)
        self.std = ((squares / len(reference) - mean * mean).clamp_min(0).sqrt() + 1e-6).float()
        self.mean = mean.float()

    def _raw(self, idx: np.ndarray):
        for start in range(0, len(idx), CHUNK):
            x = self.ds.images[torch.as_tensor(idx[start:start + CHUNK], device=self.ds.labels.device)].float() / 255
            yield self.view(x).reshape(len(x), -1)

    def units(self, idx: np.ndarray):
        for x in self._raw(idx):
            x = (x - self.mean) / self.std
            yield x / (x.norm(dim=1, keepdim=True) + 1e-12)

    def total(self, idx: np.ndarray) -> torch.Tensor:
        out = torch.zeros(self.mean.shape, dtype=torch.float64, device=self.mean.device)
        for u in self.units(idx):
            out += u.sum(0, dtype=torch.float64)
        return out


def mean_cosine(total, n: int) -> float:
    """Mean cosine over the pairs of n unit vectors, from their sum: (|sum|^2 - n) / (n (n - 1))."""
    return float((total @ total - n) / (n * (n - 1))) if n > 1 else float("nan")


def trigger_coherence(ds: ImageDataset, labels: np.ndarray, fit_rank: np.ndarray, label_prob: np.ndarray | None,
                      called: np.ndarray | None, share: float, copy_of: np.ndarray | None, seed: int) -> Coherence:
    """Per class, the coherence and likeness of its unrecognised group; per sample, the match with the
    most coherent not-alike group's fine detail (see the module's docstring)."""
    n_classes = int(labels.max()) + 1 if len(labels) else 0
    z, like, size = (np.full(n_classes, np.nan) for _ in range(3))
    match = np.full(len(labels), np.nan)
    if label_prob is None or called is None or not np.isfinite(label_prob).any():
        return Coherence(z, like, size, match, -1)
    counted = distinct(len(labels), copy_of)
    groups = unrecognised_groups(labels, fit_rank, label_prob, share, copy_of)
    for c, g in groups.items():
        size[c] = len(g)
    groups = {c: g for c, g in groups.items() if len(g) >= MIN_GROUP}
    if not groups:
        return Coherence(z, like, size, match, -1)
    rng = np.random.default_rng([seed, 0xC0DE])
    groups = {c: np.sort(rng.permutation(g)[:GROUP_MAX]) for c, g in groups.items()}
    reference = np.sort(rng.permutation(np.flatnonzero(counted))[:REFERENCE])
    detail, thumbs = _Units(ds, fine_detail, reference), _Units(ds, layout, reference)
    pools = {k: np.flatnonzero((labels == k) & counted) for k in range(n_classes)}
    totals = {}
    for c, g in groups.items():
        totals[c] = detail.total(g)
        coherence = mean_cosine(totals[c], len(g))
        drawn = []
        for _ in range(DRAWS):
            picks = np.array([rng.choice(pools[int(k)]) for k in called[g] if len(pools.get(int(k), ()))])
            if len(picks) > 1:
                drawn.append(mean_cosine(detail.total(picks), len(picks)))
        sd = float(np.std(drawn)) if len(drawn) > 1 else 0.0
        z[c] = (coherence - float(np.mean(drawn))) / sd if sd > 0 else np.nan
        like[c] = mean_cosine(thumbs.total(g), len(g))
    candidates = [c for c in groups if np.isfinite(z[c]) and like[c] < LIKENESS]
    if not candidates:
        return Coherence(z, like, size, match, -1)
    best = max(candidates, key=lambda c: z[c])
    direction = totals[best].float()
    norm = float(direction.norm()) + 1e-12
    everyone = np.arange(len(labels))
    start = 0
    for u in detail.units(everyone):
        match[start:start + len(u)] = (u @ direction / norm).cpu().numpy()
        start += len(u)
    members = groups[best]
    start = 0
    for u in detail.units(members):  # a member's own detail left out of the direction it is read on
        rest = direction[None, :] - u
        match[members[start:start + len(u)]] = ((u * rest).sum(1) / (rest.norm(dim=1) + 1e-12)).cpu().numpy()
        start += len(u)
    return Coherence(z, like, size, match, int(best))
