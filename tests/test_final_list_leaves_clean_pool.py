"""After `split` the final suspicious list (it reads I too) leaves the clean pool, and the last
history record is brought in line with the pool it describes (method.bsd.exclude_final_list)."""

from __future__ import annotations

import numpy as np

from bsd_audit.method.bsd import EpochRecord, SplitResult, exclude_final_list


def _result(clean):
    n = len(clean)
    nan = np.full(n, np.nan)
    rec = EpochRecord(9, "drop", 0.5, int(clean.sum()), [], 0.1, 0.1, 2, 0.5)
    return SplitResult(0, nan, nan, nan, clean.copy(), clean.copy(), clean.copy(), clean.copy(), [rec])


def test_listed_samples_leave_the_clean_pool_and_the_history_follows():
    labels = np.array([0, 0, 1, 1, 1, 2, 2, 2])
    clean = np.array([1, 1, 1, 1, 0, 1, 1, 0], dtype=bool)
    truth = np.array([0, 0, 1, 1, 1, 0, 0, 0], dtype=bool)  # 2 of the 3 poisoned are in the clean pool
    listed = np.array([0, 0, 1, 0, 1, 0, 0, 0], dtype=bool)  # the list holds one of them
    res = _result(clean)
    assert exclude_final_list(res, listed, labels, 3, truth) == 1
    assert not (res.clean & listed).any() and res.clean.sum() == clean.sum() - 1
    rec = res.history[-1]
    assert rec.clean_size == res.clean.sum() and rec.clean_per_class == [2, 1, 2]
    assert rec.poison_in_clean == 1 and rec.poison_recall == 1 - 1 / 3


def test_a_list_outside_the_clean_pool_changes_nothing():
    labels = np.array([0, 1, 1, 2])
    clean = np.array([1, 1, 0, 1], dtype=bool)
    res = _result(clean)
    before = res.history[-1].clean_size
    assert exclude_final_list(res, np.array([0, 0, 1, 0], dtype=bool), labels, 3, None) == 0
    assert (res.clean == clean).all() and res.history[-1].clean_size == before
