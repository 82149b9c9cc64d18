"""Trigger coherence: do the pictures a class's held-out model does not recognise share fine detail
that no honest picture carries? (Not in the paper; evidence for the verdict, method/verdict.py.)

A dirty-label trigger is the same pixels put on every poisoned picture: a patch, a blended pattern, a
signal. The held-out check (method/holdout.py) finds, per class, the held-out pictures a model trained
without them does not call by their label. When those are poison, they are pictures of the other
classes with one thing in common. Their fine detail (each picture minus its 3 x 3 local mean: edges,
texture, noise, read at the working size) is otherwise unrelated from one picture to the next, so
what their fine detail shares is the trigger.

- Two groups per class, each tested from MIN_GROUP pictures:
  - unrecognised: its held-out pictures (either quarter, copies once) whose label probability is
    under half of chance, 0.5 / K: poison the model learns as a shortcut, fitted first;
  - last fitted: its last-fitted quarter by fit rank: poison the model does not learn as a shortcut
    (a faint blend on photos) is fitted last, as mislabelled pictures are.
- ``coherence``: the mean cosine between the fine detail of two of a group's pictures (standardised
  per pixel over the data), as a z against DRAWS draws of as many matched pictures: for the
  unrecognised group one picture of the class the model called each member, for the last-fitted
  group the class's other pictures. The 32 px calibration runs: trigger groups 16-700, honest groups
  at most 4.2 where their pictures are not alike. A class's reading is its more coherent not-alike
  group (``group`` says which).
- ``likeness``: the same mean cosine on 16 px thumbnails. A class's own odd group (one background,
  one studio) shares fine detail too (coherence up to 11), but shares its layout more: likeness
  0.31-0.76 on those groups, 0.00-0.22 on trigger groups, whose pictures come from every class (a
  patch or a noise blend under 0.08; SIG's wave shows in the thumbnails too).
- ``trigger_match``: per picture, the cosine of its fine detail with the most coherent not-alike
  group's mean (its own contribution left out for the group's members): the trigger's direction.
  Poison reads 0.25-0.8, honest pictures about 0 (docs/decisions/0033-trigger-coherence.md).

Blind by construction to triggers that are not the same pixels on every picture (a warp, a
per-picture pattern) and to clean-label poison that is neither unrecognised nor fitted last; the
other lines of evidence stay for those.
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
LAST_FITTED_SHARE = 0.25  # a class's last-fitted pictures read as a group: its last quarter by fit rank
UNRECOGNISED, LAST_FITTED = 0, 1  # the two groups read per class
GROUP_NAMES = ("unrecognised", "last fitted")


class Coherence(NamedTuple):
    """Per class (NaN where not read): its reading's coherence z, likeness and group size; per sample,
    the match with the most coherent not-alike group's fine detail (NaN when no group was read)."""

    z: np.ndarray
    likeness: np.ndarray
    size: np.ndarray
    group: np.ndarray  # per class, which group the reading is of: UNRECOGNISED, LAST_FITTED (-1: none read)
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


def last_fitted_groups(labels: np.ndarray, fit_rank: np.ndarray, copy_of: np.ndarray | None) -> dict[int, np.ndarray]:
    """Per class, its last-fitted LAST_FITTED_SHARE (copies once): where poison the model does not learn as
    a shortcut ends up, fitted last, as mislabelled pictures are."""
    counted = distinct(len(labels), copy_of)
    out = {}
    for c in range(int(labels.max()) + 1 if len(labels) else 0):
        idx = np.flatnonzero((labels == c) & counted)
        order = idx[np.argsort(fit_rank[idx], kind="stable")]
        out[c] = np.sort(order[len(order) - int(len(order) * LAST_FITTED_SHARE):])
    return out


def trigger_coherence(ds: ImageDataset, labels: np.ndarray, fit_rank: np.ndarray, label_prob: np.ndarray | None,
                      called: np.ndarray | None, share: float, copy_of: np.ndarray | None, seed: int) -> Coherence:
    """Per class, the coherence and likeness of its more coherent group; per sample, the match with the
    most coherent not-alike group's fine detail (see the module's docstring)."""
    n_classes = int(labels.max()) + 1 if len(labels) else 0
    z, like, size = (np.full(n_classes, np.nan) for _ in range(3))
    kind = np.full(n_classes, -1, dtype=np.int64)
    match = np.full(len(labels), np.nan)
    counted = distinct(len(labels), copy_of)
    rng = np.random.default_rng([seed, 0xC0DE])
    pools = {k: np.flatnonzero((labels == k) & counted) for k in range(n_classes)}
    # (group kind, class) -> (pictures, how to draw one matched picture per member)
    readings: dict[tuple[int, int], tuple[np.ndarray, object]] = {}
    if label_prob is not None and called is not None and np.isfinite(label_prob).any():
        for c, g in unrecognised_groups(labels, fit_rank, label_prob, share, copy_of).items():
            if len(g) >= MIN_GROUP:  # one picture of the class the held-out model called each member
                readings[UNRECOGNISED, c] = (g, lambda g: np.array(
                    [rng.choice(pools[int(k)]) for k in called[g] if len(pools.get(int(k), ()))]))
    for c, g in last_fitted_groups(labels, fit_rank, copy_of).items():
        rest = np.setdiff1d(pools[c], g)
        if len(g) >= MIN_GROUP and len(rest) >= len(g):  # as many of the class's other pictures
            readings[LAST_FITTED, c] = (g, lambda g, rest=rest: rng.choice(rest, len(g), replace=False))
    if not readings:
        return Coherence(z, like, size, kind, match, -1)
    readings = {key: (np.sort(rng.permutation(g)[:GROUP_MAX]), draw) for key, (g, draw) in readings.items()}
    reference = np.sort(rng.permutation(np.flatnonzero(counted))[:REFERENCE])
    detail, thumbs = _Units(ds, fine_detail, reference), _Units(ds, layout, reference)
    totals, read = {}, {}
    for key, (g, draw) in readings.items():
        totals[key] = detail.total(g)
        coherence = mean_cosine(totals[key], len(g))
        drawn = []
        for _ in range(DRAWS):
            picks = np.sort(draw(g))
            if len(picks) > 1:
                drawn.append(mean_cosine(detail.total(picks), len(picks)))
        sd = float(np.std(drawn)) if len(drawn) > 1 else 0.0
        read[key] = ((coherence - float(np.mean(drawn))) / sd if sd > 0 else np.nan, mean_cosine(thumbs.total(g), len(g)))
    for c in range(n_classes):  # a class's reading: its not-alike group of higher z, else its group of higher z
        mine = [key for key in read if key[1] == c]
        if mine:
            key = max(mine, key=lambda k: (read[k][1] < LIKENESS, np.nan_to_num(read[k][0], nan=-np.inf)))
            z[c], like[c], kind[c], size[c] = read[key][0], read[key][1], key[0], len(readings[key][0])
    candidates = [key for key, (zk, lk) in read.items() if np.isfinite(zk) and lk < LIKENESS]
    if not candidates:
        return Coherence(z, like, size, kind, match, -1)
    best = max(candidates, key=lambda key: read[key][0])
    direction = totals[best].float()
    norm = float(direction.norm()) + 1e-12
    everyone = np.arange(len(labels))
    start = 0
    for u in detail.units(everyone):
        match[start:start + len(u)] = (u @ direction / norm).cpu().numpy()
        start += len(u)
    members = readings[best][0]
    start = 0
    for u in detail.units(members):  # a member's own detail left out of the direction it is read on
        rest = direction[None, :] - u
        match[members[start:start + len(u)]] = ((u * rest).sum(1) / (rest.norm(dim=1) + 1e-12)).cpu().numpy()
        start += len(u)
    return Coherence(z, like, size, kind, match, int(best[1]))
