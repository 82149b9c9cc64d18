"""The target class keeps its least trigger-like share (by a warm-up score: fit rank or ALS) through
class completion and the selective drop, so it never leaves the clean pool (Decision in
docs/decisions/0008-target-keep.md)."""

from __future__ import annotations

import numpy as np

from bsd_audit.method.pools import selective_drop, target_keep


def test_keeps_the_top_share_of_the_target_class_by_its_score():
    labels = np.array([0, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1])  # target 1 has 10 samples
    als = np.array([9.0, 0.1, 5.0, 4.0, 0.2, 3.0, 8.0, 6.0, 0.3, 1.0, 2.0, 0.05])
    keep = target_keep(als, labels, target=1, share=0.2)
    # 0.2 x 10 = 2 samples: the two highest scores inside class 1 (idx 7: 6.0, idx 2: 5.0);
    # the non-target idx 0 and 6 have higher losses but are not candidates
    assert np.flatnonzero(keep).tolist() == [2, 7]


def test_kept_samples_survive_the_selective_drop():
    labels = np.array([0, 0, 1, 1, 1, 1, 1])
    als = np.array([1.0, 1.0, 9.0, 0.1, 0.2, 0.3, 0.4])
    keep = target_keep(als, labels, target=1, share=0.2)  # round(0.2 x 5) = 1: idx 2
    clean = np.array([True, True, True, True, False, False, False])
    both_say_target = np.array([0, 0, 1, 1, 1, 1, 1])
    dropped = selective_drop(clean, both_say_target, both_say_target, target=1)
    assert np.flatnonzero(dropped).tolist() == [0, 1]  # eq. 10 removes every target prediction
    assert np.flatnonzero(dropped | keep).tolist() == [0, 1, 2]  # the kept one is exempt
