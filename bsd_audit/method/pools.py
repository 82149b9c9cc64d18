"""Pool initialisation and updates: eqs. 3, 8, 9, 10 and 11 (Sec. 4.1-4.2, App. C.4)."""

from __future__ import annotations

import math

import numpy as np

from .als import top_share


def init_pools(clean_als: np.ndarray, clean_oss: np.ndarray, combine: str = "intersection") -> np.ndarray:
    """Initial clean pool (eq. 3): D_c = D_c_als ∩ D_c_oss; the poison pool is the rest
    (D_p_als ∪ D_p_oss). ``union`` reproduces Algorithm 1 line 22 instead."""
    return clean_als & clean_oss if combine == "intersection" else clean_als | clean_oss


def alpha_schedule(T: int, T1: int, T2: int, alpha: float, beta: float, init_fixed_epochs: int = 10) -> float:
    """α_T (eq. 11): a half-cosine rise from β at T1 + init_fixed_epochs to α at T2, fixed after."""
    if T >= T2:
        return alpha
    start = T1 + init_fixed_epochs
    if T <= start:
        return beta
    t_prime = (T - start) / (T2 - start) * T2
    return beta + (alpha - beta) * (1 - math.cos(math.pi * t_prime / T2)) / 2


def indicator(sce_altruistic: np.ndarray, sce_main: np.ndarray) -> np.ndarray:
    """I(x, y) = L_sce(x, y; φ) - L_sce(x, y; θ) (eq. 9). High I = clean: poison has a low loss on
    the backdoored altruistic model and a high one on the main model that never learned the trigger."""
    return sce_altruistic - sce_main


def class_completion(I: np.ndarray, labels: np.ndarray, num_classes: int, alpha_T: float,
                     scope: str = "fewest", target: int | None = None) -> np.ndarray:
    """Clean pool by eq. 8: the top α_T share of D by I, plus class top-ups from each class's own
    best samples by I.

    ``fewest`` (the paper): only the class with the fewest samples in that set is topped up, to
    n' = min(α_T·N_i, N_secondFew). ``all``: every class below n'_i = min(α_T·N_i, N_median) is
    topped up, N_median being the median clean count over classes. With short training several
    classes can drop out of the pool together; then N_secondFew is 0 and the paper's rule adds
    nothing, and the positive feedback (no clean samples -> high main-model loss -> low I) empties
    them for good. The median reference keeps every class in the pool. The ``target`` class is
    never refilled under ``all``: it is where the poison lives, and refilling it by I pulls the
    poison that I ranks least well into the clean pool (measured: 12 of 125 on the sample).
    """
    clean = top_share(I, alpha_T)
    counts = np.bincount(labels[clean], minlength=num_classes)
    sizes = np.bincount(labels, minlength=num_classes)
    present = sizes > 0
    if present.sum() < 2:
        return clean
    if scope == "fewest":
        order = np.argsort(np.where(present, counts, np.iinfo(np.int64).max), kind="stable")
        refs = {int(order[0]): counts[order[1]]}
    else:
        median = float(np.median(counts[present]))
        refs = {int(i): median for i in np.flatnonzero(present) if i != target}
    for i, ref in refs.items():
        n_prime = int(min(alpha_T * sizes[i], ref))
        if n_prime > counts[i]:
            members = np.flatnonzero(labels == i)
            clean[members[np.argsort(-I[members], kind="stable")[:n_prime]]] = True
    return clean


def selective_drop(clean: np.ndarray, pred_main: np.ndarray, pred_altruistic: np.ndarray, target: int) -> np.ndarray:
    """Eq. 10: remove from the clean pool every sample both models predict as ỹ_t."""
    return clean & ~((pred_main == target) & (pred_altruistic == target))


def target_keep(scores: np.ndarray, labels: np.ndarray, target: int, share: float) -> np.ndarray:
    """The target-class samples kept clean through class completion and selective drop (Decision,
    docs/decisions/0008-target-keep.md): the top ``share`` of D_t by a score where high = unlike a trigger
    (trigger_keep_score, the fit rank averaged over the loss window, or the ALS loss).

    Class completion ranks by I, and inside D_t I cannot tell clean from poison: the main model never
    learned the trigger, but it cannot fit the clean target images either while they are missing
    from its clean pool (measured AUROC inside D_t: I 0.67, ALS 0.95). Without this the target class
    leaves the clean pool for good and a model trained on it never predicts that class.
    """
    members = np.flatnonzero(labels == target)
    keep = np.zeros(len(labels), dtype=bool)
    keep[members[top_share(scores[members], share)]] = True
    return keep


def trigger_keep_score(match: np.ndarray, labels: np.ndarray, target: int) -> np.ndarray:
    """High = matches the trigger's fine detail as a picture without it does: minus the distance of
    each sample's trigger match (method/coherence.py) from the other classes' median match. Both
    tails are unlike a trigger-free picture: a patch shifted by a pixel matches the read pattern
    negatively (measured: the three lowest-matching shoes of clothing BadNets at 128 px were poison)."""
    rest = match[(labels != target) & np.isfinite(match)]
    centre = float(np.median(rest)) if len(rest) else 0.0
    return -np.abs(np.nan_to_num(match, nan=np.inf) - centre)
