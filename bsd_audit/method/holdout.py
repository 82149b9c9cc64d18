"""The held-out check: is a class's best-fitted group predicted as its label by a model that never
saw it? (Not in the paper; evidence for the attack-present verdict, method/verdict.py.)

The warm-up's fit ranks say which samples of a class were fitted first; they cannot say why. A class
can owe an early-fitted group to honest ease (prototypical pictures) or to a trigger. The two differ
in where the label comes from. An easy honest picture of a dog looks like the dogs around it: a
model trained without it still calls it a dog, more surely than the class's harder pictures. A
poisoned picture is a cat with a trigger and a dog label: without the trigger group in training,
no model learns the trigger, and the picture is called a cat.

So, per class, the ``holdout_share`` of its samples fitted first are held out (the poison sits
there: up to half of D_t at 10 % poison in ten classes) and one supervised model is trained on the
rest of D, every class at once. The held-out part is read as two halves: the first-fitted quarter
(``quarter`` 0) and the next (1). For an honest class the first quarter's label probability is at
least the next's; under a trigger it falls to what the model gives a foreign picture. The contrast
is a Mann-Whitney z per class (``class_contrast``), low = the first-fitted group is not explained
by the class's content.

A class's own odd group (a series of photos on one background) is also foreign to a model trained
without it. ``called_as`` tells the two apart by how the model calls the group among the other
classes: as honest pictures of all of them (a trigger group), or as one kind of picture. Where the
classes are alike (shirts, long sleeves and t-shirts) the model's calls cannot show that spread, so
``group_variety`` reads it in the pictures themselves: a trigger group is as varied as the other
classes' pictures it was made from, an odd group's pictures are alike.

Clean-label attacks (SIG) poison pictures of the target class itself; their content does explain
the label, so this check is blind to them and the fit-rank tail carries the verdict there.

The model and its batch order draw from their own generators, seeded from ``cfg.seed``: the check
leaves every generator the split uses as it found it, so a split with or without it is the same.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ..config import Config
from ..data import ImageDataset, Normalizer
from ..training.loops import check_finite, new_model, predict, supervised_epoch
from ..training.runtime import Runtime

MIN_QUARTER = 10  # a class needs this many samples in each held-out quarter to be tested
CONTRASTS = 2  # readings per class in class_contrast (the quarter, its first half): the line counts both
THUMB = 16  # side of the thumbnails whose spread group_variety reads: layout and colour, not texture
VARIETY_DRAWS = 5  # same-sized draws of the other classes' pictures the group's spread is set against
VARIETY_MAX = 1000  # pictures of a group (and of each draw) read, at most: the cost stays quadratic in this


def holdout_quarters(labels: np.ndarray, fit_rank: np.ndarray, share: float) -> np.ndarray:
    """Per sample: 0 in its class's first-fitted ``share / 2``, 1 in the next ``share / 2``, -1 for
    the rest (trained on). Ties in fit rank go by index, so the split is a function of the inputs."""
    quarter = np.full(len(labels), -1, dtype=np.int8)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        order = idx[np.argsort(fit_rank[idx], kind="stable")]
        held = int(round(share * len(order)))
        quarter[order[:held // 2]] = 0
        quarter[order[held // 2:held]] = 1
    return quarter


def holdout_check(ds: ImageDataset, norm: Normalizer, cfg: Config, rt: Runtime, fit_rank: np.ndarray,
                  progress=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per sample, from the held-out model: the probability of its label, the class it calls the sample
    among the others (-1 on the samples it trained on) and that class's probability (NaN where it trained)."""
    labels = ds.labels.cpu().numpy()
    prob = np.full(len(labels), np.nan)
    called, called_prob = np.full(len(labels), -1, dtype=np.int64), np.full(len(labels), np.nan)
    if not cfg.holdout_epochs:
        return prob, called, called_prob
    quarter = holdout_quarters(labels, fit_rank, cfg.holdout_share)
    # fp32 whatever the run's precision: trained under bf16 autocast the check's z on the sample's trigger
    # group was 1.1-1.4 weaker on the same fit ranks (docs/decisions/0030-bf16-on-cpus.md), and its line
    # was set on fp32 runs
    rt = dataclasses.replace(rt, amp_dtype=None)
    seed = int(np.random.SeedSequence([cfg.seed, 0x401D]).generate_state(1)[0])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = new_model(cfg, ds.num_classes, rt)
    gen = rt.generator(seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.warmup_lr)
    train_idx = torch.as_tensor(np.flatnonzero(quarter < 0), device=rt.device)
    held_idx = np.flatnonzero(quarter >= 0)
    for epoch in range(cfg.holdout_epochs):
        loss = supervised_epoch(model, opt, ds, train_idx, norm, cfg, rt, gen)
        check_finite(loss, "held-out check", epoch, cfg.holdout_epochs, cfg, "warmup_lr")
        if progress is not None:
            progress.advance(1, f"held-out check, epoch {epoch + 1}/{cfg.holdout_epochs}: loss {loss:.3f}")
    if len(held_idx):
        logits = predict(model, ds, norm, rt, cfg.eval_batch_size, torch.as_tensor(held_idx, device=rt.device))
        p = torch.softmax(logits, dim=1).cpu().numpy()
        rows = np.arange(len(held_idx))
        prob[held_idx] = p[rows, labels[held_idx]]
        p[rows, labels[held_idx]] = -1.0  # the best class among the others
        called[held_idx] = p.argmax(axis=1)
        called_prob[held_idx] = p[rows, called[held_idx]]
    return prob, called, called_prob


def midranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their mean rank."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    _, inverse = np.unique(values, return_inverse=True)
    return (np.bincount(inverse, ranks) / np.bincount(inverse))[inverse]


def mann_whitney_z(a: np.ndarray, b: np.ndarray) -> float:
    """The normal approximation of the Mann-Whitney U statistic: negative when ``a`` tends lower."""
    n1, n2 = len(a), len(b)
    ranks = midranks(np.concatenate([a, b]))
    u = ranks[:n1].sum() - n1 * (n1 + 1) / 2
    sd = math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)
    return float((u - n1 * n2 / 2) / sd) if sd > 0 else 0.0


def distinct(n: int, copy_of: np.ndarray | None) -> np.ndarray:
    """Mask of the samples that count: each set of identical pictures in a class once (its first)."""
    return np.ones(n, dtype=bool) if copy_of is None else copy_of == np.arange(n)


def class_contrast(labels: np.ndarray, fit_rank: np.ndarray, label_prob: np.ndarray, share: float,
                   copy_of: np.ndarray | None = None) -> dict[int, float]:
    """Per tested class, the Mann-Whitney z of its first-fitted quarter's label probabilities against
    the next quarter's (low = the first group is not explained by the class's content), or of the
    quarter's own first-fitted half against the next quarter, whichever is lower (CONTRASTS readings
    per class, which the verdict's line counts). A trigger group smaller than the quarter is diluted
    in it by the class's easiest honest pictures, which the held-out model recognises better than the
    next quarter's: BadNets 5x5 at 1 % of 10,000 images put 99 of its 100 pictures in airplane's
    first-fitted quarter of 275, whose honest part was called airplane at 0.56 against 0.34 for the
    next quarter; the quarter read z −2.33, its first half (90 of 137 poisoned) −7.07.

    Copies of a picture count once: a picture repeated six times is fitted first and held out with its
    copies, and would weigh six times in the z (a clean class with 36 copies of 6 hard pictures reached
    -3.4). Classes with fewer than MIN_QUARTER distinct samples in a quarter, or without the check's
    output, are left out."""
    if label_prob is None or not np.isfinite(label_prob).any():
        return {}
    quarter = holdout_quarters(labels, fit_rank, share)
    counted = distinct(len(labels), copy_of)
    z = {}
    for c in np.unique(labels):
        in_first = np.flatnonzero((labels == c) & (quarter == 0) & counted)
        first = label_prob[in_first]
        second = label_prob[(labels == c) & (quarter == 1) & counted]
        if len(first) >= MIN_QUARTER and len(second) >= MIN_QUARTER and np.isfinite(first).all() and np.isfinite(second).all():
            # the quarter's first-fitted half (ties in fit rank by index, as the quarters are drawn)
            head = label_prob[in_first[np.argsort(fit_rank[in_first], kind="stable")][:max(MIN_QUARTER, len(first) // 2)]]
            z[int(c)] = min(mann_whitney_z(first, second), mann_whitney_z(head, second))
    return z


def _tested(labels: np.ndarray, quarter: np.ndarray, counted: np.ndarray, c: int) -> bool:
    """Class c has MIN_QUARTER distinct samples in each held-out quarter: the check reads it."""
    in_c = (labels == c) & counted
    return (in_c & (quarter == 0)).sum() >= MIN_QUARTER and (in_c & (quarter == 1)).sum() >= MIN_QUARTER


def unrecognised(labels: np.ndarray, quarter: np.ndarray, counted: np.ndarray, label_prob: np.ndarray,
                 c: int) -> np.ndarray:
    """Class c's first-fitted samples (copies once) whose held-out label probability is under the
    median of its next quarter's: the group the check cannot explain by the class's content."""
    second = label_prob[(labels == c) & (quarter == 1) & counted]
    first = np.flatnonzero((labels == c) & (quarter == 0) & counted)
    return first[label_prob[first] < np.median(second)] if len(second) else first[:0]


def group_variety(ds: ImageDataset, labels: np.ndarray, fit_rank: np.ndarray, label_prob: np.ndarray | None,
                  share: float, copy_of: np.ndarray | None, seed: int) -> np.ndarray:
    """Per class (NaN where it is not tested): how varied its unrecognised group's pictures are, over
    how varied as many pictures of the other classes are. Read as the mean distance between two
    pictures, on THUMB x THUMB thumbnails standardised per pixel over the data.

    A dirty-label trigger group is pictures of the other classes with something added: a patch leaves
    their spread as it was (0.95-1.03 on the calibration runs, at 32 and 128 px), a blend shrinks it by
    its ratio (0.74-0.88 at ratios 0.1-0.2). A class's own odd group is one kind of picture: clean
    clothing's hats on one background, CIFAR-10 deer on grass, a second domain's class among twenty
    read 0.55-0.72 (docs/decisions/0031-group-variety.md)."""
    classes = np.unique(labels)
    out = np.full(int(classes.max()) + 1 if len(classes) else 0, np.nan)
    if label_prob is None or not np.isfinite(label_prob).any():
        return out
    quarter = holdout_quarters(labels, fit_rank, share)
    counted = distinct(len(labels), copy_of)
    rng = np.random.default_rng([seed, 0x7A41])
    groups = {}
    for c in classes:
        if not _tested(labels, quarter, counted, int(c)):
            continue
        group = unrecognised(labels, quarter, counted, label_prob, int(c))
        if len(group) >= 2:
            groups[int(c)] = rng.permutation(group)[:VARIETY_MAX]
    if not groups:
        return out
    # per-pixel standardisation from a sample of the data, so that no channel or region dominates
    sample = rng.permutation(np.flatnonzero(counted))[:4 * VARIETY_MAX]
    ref = _thumbs(ds, sample)
    mean, std = ref.mean(0), ref.std(0) + 1e-6
    for c, group in groups.items():
        others = np.flatnonzero((labels != c) & counted)
        if len(others) < len(group):
            continue
        spread = _mean_distance((_thumbs(ds, group) - mean) / std)
        draws = [_mean_distance((_thumbs(ds, rng.choice(others, len(group), replace=False)) - mean) / std)
                 for _ in range(VARIETY_DRAWS)]
        out[c] = spread / float(np.mean(draws)) if np.mean(draws) > 0 else np.nan
    return out


def _thumbs(ds: ImageDataset, idx: np.ndarray, chunk: int = 256) -> np.ndarray:
    """THUMB x THUMB thumbnails of the samples ``idx``, flattened, as float64 on the host (decoded in
    chunks: 4,000 pictures at 224 px would be 2.4 GB as floats at once)."""
    out = []
    for start in range(0, len(idx), chunk):
        x = ds.images[torch.as_tensor(idx[start:start + chunk], device=ds.labels.device)].float()
        x = F.interpolate(x, size=(THUMB, THUMB), mode="bilinear", antialias=True, align_corners=False)
        out.append(x.reshape(len(x), -1).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 3 * THUMB * THUMB))


def _mean_distance(x: np.ndarray) -> float:
    """Mean Euclidean distance over the pairs of rows of x."""
    sq = (x ** 2).sum(1)
    d2 = np.clip(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0, None)
    iu = np.triu_indices(len(x), 1)
    return float(np.sqrt(d2[iu]).mean())


class CalledAs(NamedTuple):
    """What the held-out model calls a class's unrecognised first-fitted samples (those whose label
    probability is under the next quarter's median), among the other classes."""

    sure: float  # median share of the called class's own held-out pictures that it calls less surely
    spread: float  # entropy of the called classes over the entropy of the other classes' sizes
    others: int  # the other classes there are to call
    variety: float = float("nan")  # the group's pictures' spread over the other classes' (group_variety)


def called_as(labels: np.ndarray, fit_rank: np.ndarray, label_prob: np.ndarray | None, called: np.ndarray | None,
              called_prob: np.ndarray | None, share: float, copy_of: np.ndarray | None = None,
              variety: np.ndarray | None = None) -> dict[int, CalledAs]:
    """Per tested class, how the held-out model calls its unrecognised first-fitted samples (copies of
    a picture once, as in class_contrast).

    A dirty-label trigger group is honest pictures of the other classes, drawn from all of them: the
    model calls each what it depicts, about as surely as that class's own held-out pictures (``sure``
    about 0.5: the median picture's), and the called classes spread like the classes' sizes
    (``spread`` about 1). A class's own odd group is one kind of picture: called one or two
    neighbouring classes (clean CIFAR deer on grass: spread 0.37), or nothing with conviction (clean
    clothing's hats on one background: sure 0.08). ``variety`` (group_variety's, per class) is carried
    into each class's profile."""
    if label_prob is None or called is None or called_prob is None or not np.isfinite(label_prob).any():
        return {}
    quarter = holdout_quarters(labels, fit_rank, share)
    counted = distinct(len(labels), copy_of)
    classes = np.unique(labels)
    sizes = np.bincount(labels[counted], minlength=int(classes.max()) + 1).astype(np.float64)
    reference = {int(c): np.sort(label_prob[(labels == c) & (quarter == 1) & counted]) for c in classes}
    out = {}
    for c in classes:
        if not _tested(labels, quarter, counted, int(c)):
            continue
        group = unrecognised(labels, quarter, counted, label_prob, int(c))
        shares = [np.searchsorted(reference[int(called[i])], called_prob[i]) / len(reference[int(called[i])])
                  for i in group if len(reference.get(int(called[i]), ())) >= MIN_QUARTER]
        other_sizes = np.delete(sizes, c)
        h_sizes = _entropy(other_sizes[other_sizes > 0])
        h_called = _entropy(np.bincount(called[group], minlength=len(sizes)).astype(np.float64))
        varied = float(variety[c]) if variety is not None and c < len(variety) else float("nan")
        out[int(c)] = CalledAs(float(np.median(shares)) if shares else 0.0,
                               h_called / h_sizes if h_sizes > 0 else 0.0, int((other_sizes > 0).sum()), varied)
    return out


def _entropy(weights: np.ndarray) -> float:
    p = weights[weights > 0] / weights.sum() if weights.sum() > 0 else np.zeros(0)
    return float(-(p * np.log(p)).sum()) + 0.0  # + 0.0: a single class gives 0, not -0
