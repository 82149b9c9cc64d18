"""The figures a defence is judged by (Sec. 5.1, App. C.5 of the paper; docs/method.md "Metrics").

Plain numpy on predictions and labels; no model, no I/O. Shares are fractions in [0, 1]; the CLI
prints them as percentages, as the paper does.
"""

from __future__ import annotations

import numpy as np


def accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    """CA when ``pred`` are a model's predictions on a clean test set."""
    return float((pred == labels).mean()) if len(labels) else float("nan")


def attack_success_rate(pred: np.ndarray, true_labels: np.ndarray, backdoor_labels: np.ndarray) -> tuple[float, int]:
    """ASR: the share of triggered samples sent to the attacker's label, over the triggered samples
    whose true label differs from it (a sample already of the target class proves nothing).

    ``backdoor_labels`` is the label the backdoor sends each sample to (y_t for a single-target
    attack, (y + 1) mod C for all-to-all). Returns (ASR, number of samples it is computed over).
    """
    counted = true_labels != backdoor_labels
    n = int(counted.sum())
    if n == 0:
        return float("nan"), 0
    return float((pred[counted] == backdoor_labels[counted]).mean()), n


def defence_effectiveness_ratio(ca_baseline: float, asr_baseline: float, ca_defended: float,
                                asr_defended: float) -> float:
    """DER = [max(0, ΔASR) − max(0, ΔCA) + 1] / 2, Δ = no-defence minus defended, so a fall of the
    ASR and a drop of the CA both count positive. 1 = the backdoor removed at no cost in accuracy."""
    return (max(0.0, asr_baseline - asr_defended) - max(0.0, ca_baseline - ca_defended) + 1.0) / 2.0


def confusion_matrix(pred: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """C x C counts: row = true class, column = predicted class."""
    return np.bincount(labels * num_classes + pred, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_accuracy(confusion: np.ndarray) -> np.ndarray:
    """Recall of each class (NaN for a class absent from the test set)."""
    totals = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(confusion) / np.maximum(totals, 1), np.nan)


def auroc(score_clean_high: np.ndarray, is_clean: np.ndarray) -> float | None:
    """Probability that a random clean sample scores above a random poisoned one (ties count half).
    NaN scores are left out; None when either group is empty."""
    ok = ~np.isnan(score_clean_high)
    s, c = score_clean_high[ok], is_clean[ok]
    n_pos, n_neg = int(c.sum()), int((~c).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    # tie-averaged 1-based ranks: each distinct value gets the mean of the ranks it spans
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2)[inverse]
    return float((ranks[c].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def precision_at_recall(score_suspicious_high: np.ndarray, truth: np.ndarray, recall: float = 0.9) -> float | None:
    """Precision of the shortest prefix of the ranking (most suspicious first, ties by index) that
    holds at least ``recall`` of the poisoned samples: how clean a reviewer's pile is by the time
    they have seen that share of the poison. None without poison."""
    n_poison = int(truth.sum())
    if n_poison == 0:
        return None
    hits = truth[np.argsort(-score_suspicious_high, kind="stable")]
    k = int(np.searchsorted(np.cumsum(hits), int(np.ceil(recall * n_poison)))) + 1
    return float(hits[:k].mean())


def split_quality(clean: np.ndarray, truth: np.ndarray, scores: dict[str, np.ndarray]) -> dict:
    """How good a clean/poison split is against ground truth: the figures BSD is judged by.

    ``clean`` is the final clean-pool mask, ``truth`` the poisoned mask, ``scores`` maps a name to a
    per-sample score (high = clean); each gets an AUROC."""
    n_poison = int(truth.sum())
    left = int((clean & truth).sum())
    poison_pool = ~clean
    out = {
        "num_poisoned": n_poison,
        "poison_in_clean": left,
        "poison_left_share": round(left / n_poison, 4) if n_poison else None,
        "poison_recall": round(1 - left / n_poison, 4) if n_poison else None,
        "poison_pool_precision": round(float(truth[poison_pool].mean()), 4) if poison_pool.any() else None,
    }
    for name, s in scores.items():
        out[f"auroc_{name}"] = auroc(s, ~truth)
    return out
