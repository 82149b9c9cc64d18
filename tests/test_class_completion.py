"""Class completion (eq. 8): top α_T share of D by I, then the fewest class topped up to
n' = min(α_T·N_i, N_secondFew) with its own best-I samples."""

from __future__ import annotations

import numpy as np

from bsd_audit.method.pools import class_completion

LABELS = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])


def test_top_share_plus_fewest_class_topped_up():
    # α_T = 0.5 of 12 -> top 6 by I: idx 0-5 (I = 9, 8, 7, 6, 5, 4). Clean counts: c0 = 4, c1 = 2, c2 = 0.
    # Fewest class 2, second-fewest class 1 with 2. n' = min(0.5·4, 2) = 2: class 2's two best by I,
    # idx 8 (3.0) and idx 9 (2.5). idx 11 (2.0) beats idx 6 (1.0) globally, yet stays out.
    I = np.array([9, 8, 7, 6, 5, 4, 1, 0, 3, 2.5, -1, 2], dtype=float)
    clean = class_completion(I, LABELS, num_classes=3, alpha_T=0.5)
    assert clean.dtype == bool
    assert np.flatnonzero(clean).tolist() == [0, 1, 2, 3, 4, 5, 8, 9]
    assert np.bincount(LABELS[clean], minlength=3).tolist() == [4, 2, 2]


def test_top_up_capped_by_second_fewest_count():
    # labels: class 0 idx 0-5, class 1 idx 6-7, class 2 idx 8-11. α_T = 0.5 -> top 6:
    # idx 0-4 (class 0) and idx 6 (class 1). Counts c0 = 5, c1 = 1, c2 = 0.
    # n' = min(0.5·4 = 2, N_secondFew = 1) = 1 -> only class 2's best, idx 10 (I = 3.5).
    labels = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    I = np.array([10, 9, 8, 7, 6, 1, 5.5, 0, 2, 3, 3.5, -4], dtype=float)
    clean = class_completion(I, labels, num_classes=3, alpha_T=0.5)
    assert np.flatnonzero(clean).tolist() == [0, 1, 2, 3, 4, 6, 10]


def test_top_up_capped_by_alpha_times_class_size():
    # class 2 has only 2 samples (idx 10, 11). α_T = 0.5 of 12 -> top 6 = idx 0-5 (class 0 x3, class 1 x3).
    # Counts c0 = 3, c1 = 3, c2 = 0. n' = min(0.5·2 = 1, 3) = 1 -> class 2's best: idx 11.
    labels = np.array([0, 0, 0, 1, 1, 1, 0, 1, 0, 1, 2, 2])
    I = np.array([9, 8, 7, 6, 5, 4, 3, 2, 1, 0, -2, -1], dtype=float)
    clean = class_completion(I, labels, num_classes=3, alpha_T=0.5)
    assert np.flatnonzero(clean).tolist() == [0, 1, 2, 3, 4, 5, 11]


def test_no_top_up_when_classes_are_balanced():
    # top 6 = idx 0, 1 (class 0), 4, 5 (class 1), 8, 9 (class 2): counts 2, 2, 2;
    # n' = min(0.5·4, 2) = 2, not more than the fewest's 2 -> the top share unchanged.
    I = np.array([9, 8, 0, -1, 7, 6, -2, -3, 5, 4, -4, -5], dtype=float)
    clean = class_completion(I, LABELS, num_classes=3, alpha_T=0.5)
    assert np.flatnonzero(clean).tolist() == [0, 1, 4, 5, 8, 9]


def test_no_top_up_when_fewest_class_already_reaches_n_prime():
    # α_T = 0.25 -> top 3 = idx 0 (c0), 4 (c1), 8 (c2): counts 1, 1, 1; n' = min(int(0.25·4) = 1, 1) = 1
    I = np.array([9, 1, 1, 1, 8, 1, 1, 1, 7, 1, 1, 1], dtype=float)
    clean = class_completion(I, LABELS, num_classes=3, alpha_T=0.25)
    assert np.flatnonzero(clean).tolist() == [0, 4, 8]


def test_absent_class_is_not_the_fewest():
    # class 3 has no samples at all: it must not be picked as "fewest" (count 0 in the clean set).
    I = np.array([9, 8, 7, 6, 5, 4, 1, 0, 3, 2.5, -1, 2], dtype=float)
    clean = class_completion(I, LABELS, num_classes=4, alpha_T=0.5)
    assert np.flatnonzero(clean).tolist() == [0, 1, 2, 3, 4, 5, 8, 9]


def test_single_class_returns_top_share():
    labels = np.zeros(5, dtype=np.int64)
    I = np.array([0.1, 0.5, 0.3, 0.9, 0.2])
    clean = class_completion(I, labels, num_classes=1, alpha_T=0.4)
    assert np.flatnonzero(clean).tolist() == [1, 3]


def test_all_scope_refills_every_collapsed_class():
    # classes 1 and 2 both fall out of the top share: the paper's rule has N_secondFew = 0 and adds
    # nothing; scope "all" tops each up towards the median clean count with its own best samples.
    labels = np.array([0] * 6 + [1] * 3 + [2] * 3)
    I = np.array([9, 8, 7, 6, 5, 4] + [1.0, 0.5, 0.2] + [0.9, 0.3, 0.1])
    paper = class_completion(I, labels, 3, 0.5, scope="fewest")
    assert paper.tolist() == [True] * 6 + [False] * 6
    # alpha 0.75: the top 9 are class 0's six, then 1.0, 0.9 and 0.5
    full = class_completion(I, labels, 3, 0.75, scope="all")
    # counts [6, 2, 1] -> median 2; class 2: n' = min(0.75*3, 2) = 2 -> adds its next best (0.3)
    assert np.flatnonzero(full & (labels == 2)).tolist() == [9, 10]
    assert (full & (labels == 1)).sum() == 2 and (full & (labels == 0)).sum() == 6


def test_all_scope_never_refills_the_target_class():
    labels = np.array([0] * 6 + [1] * 3 + [2] * 3)
    I = np.array([9, 8, 7, 6, 5, 4] + [1.0, 0.5, 0.2] + [0.9, 0.3, 0.1])
    full = class_completion(I, labels, 3, 0.75, scope="all", target=2)
    assert np.flatnonzero(full & (labels == 2)).tolist() == [9]  # only what the global top share gave it
