"""Selective drop (eq. 10): remove from the clean pool every sample both models predict as ỹ_t."""

from __future__ import annotations

import numpy as np

from bsd_audit.method.pools import selective_drop

TARGET = 2


def test_only_samples_both_models_call_target_are_dropped():
    clean = np.array([True, True, True, True, False, True])
    pred_main = np.array([2, 2, 0, 1, 2, 2])
    pred_alt = np.array([2, 0, 2, 1, 2, 2])
    out = selective_drop(clean, pred_main, pred_alt, TARGET)
    # idx 0 and 5: both say 2 -> dropped. idx 1 (main only), idx 2 (altruistic only), idx 3 (neither)
    # stay. idx 4 was not clean and is not added.
    assert out.tolist() == [False, True, True, True, False, False]


def test_never_adds_to_the_pool_and_does_not_modify_input():
    clean = np.array([False, False, True])
    before = clean.copy()
    out = selective_drop(clean, np.array([0, 1, 0]), np.array([0, 1, 0]), TARGET)
    assert out.tolist() == [False, False, True]
    assert clean.tolist() == before.tolist()


def test_agreement_on_a_non_target_class_is_kept():
    clean = np.ones(4, dtype=bool)
    out = selective_drop(clean, np.array([1, 1, 3, 2]), np.array([1, 1, 3, 2]), TARGET)
    assert out.tolist() == [True, True, True, False]
    # the target matters: with target 1 the first two go instead
    assert selective_drop(clean, np.array([1, 1, 3, 2]), np.array([1, 1, 3, 2]), 1).tolist() == [
        False, False, True, True]
