"""Open Set Splitting (Sec. 4.1.1, eqs. 4-6).

The main model f_θ is warmed up on D_nt only, so it has never seen the target class, nor the
trigger. Inside D_t, a clean target sample is an "open-set" image far from every non-target class;
a poisoned one is an image of some source class with a trigger, close to that class's features.
"""

from __future__ import annotations

import numpy as np
import torch


def class_means(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """μ_i = mean feature of class i (C x d); rows of absent classes are NaN."""
    d = features.shape[1]
    sums = torch.zeros(num_classes, d, device=features.device, dtype=features.dtype).index_add_(0, labels, features)
    counts = torch.bincount(labels, minlength=num_classes).to(features.dtype)
    return sums / counts[:, None].clamp_min(1) + torch.where(counts[:, None] > 0, 0.0, float("nan"))


def oss_distance(feat_t: torch.Tensor, means: torch.Tensor, target: int, reduce: str = "min",
                 normalize: bool = True) -> torch.Tensor:
    """S(x) over non-target class means (eq. 6): min (default), mean or max distance (App. E.2).

    ``normalize`` L2-normalises features and means first (cosine geometry). The paper uses raw L2;
    with short warm-ups on small data, raw feature norms vary more than directions do, and the
    normalised distance separated clean from poison far better (docs/method.md, CPU probe).
    """
    keep = [i for i in range(means.shape[0]) if i != target and not torch.isnan(means[i]).any()]
    mu = means[keep]
    if normalize:
        feat_t = torch.nn.functional.normalize(feat_t, dim=1)
        mu = torch.nn.functional.normalize(mu, dim=1)
    dist = torch.cdist(feat_t, mu)  # |D_t| x (C-1)
    if reduce == "min":
        return dist.min(dim=1).values
    if reduce == "mean":
        return dist.mean(dim=1)
    if reduce == "max":
        return dist.max(dim=1).values
    raise ValueError(f"unknown OSS distance reduction {reduce!r}")


def oss_split(features: torch.Tensor, labels: torch.Tensor, target: int, num_classes: int, beta: float,
              reduce: str = "min", normalize: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """OSS scores and clean mask over D (eqs. 4-5).

    Returns (scores, clean): scores is S(x) for x in D_t and NaN for D_nt; clean is
    D̃_ct ∪ D_nt, where D̃_ct is the top-β share of D_t by S (largest distance = most likely clean).
    """
    is_t = labels == target
    nt = ~is_t
    means = class_means(features[nt], labels[nt], num_classes)
    scores = torch.full((len(labels),), float("nan"), device=features.device)
    clean = nt.clone()
    idx_t = torch.nonzero(is_t).squeeze(1)
    if len(idx_t):
        s = oss_distance(features[idx_t], means, target, reduce, normalize)
        scores[idx_t] = s
        k = int(round(beta * len(idx_t)))
        # stable descending order: ties keep sample order, so the split is deterministic
        order = np.argsort(-s.cpu().numpy(), kind="stable")[:k]
        clean[idx_t[torch.from_numpy(order).to(idx_t.device)]] = True
    return scores.cpu().numpy(), clean.cpu().numpy()
