"""The attack-present verdict and the suspicious list (verdict.py), on hand-made warm-up evidence: a
target class with a group fitted far better than any honest class is 'poisoned' and that group is
the list; classes that differ only in difficulty are 'clean' with an empty list."""

from __future__ import annotations

import numpy as np
import pytest

from bsd_audit.verdict import CLEAN_SCORE, POISONED_SCORE, Evidence, attack_verdict, logit_ranks, lower_spread


def _ranks(labels, shift, rng):
    """Averaged fit ranks as the warm-up gives them: on the logit scale about normal, spread ~0.6,
    centred on a class-specific difficulty."""
    return 1 / (1 + np.exp(-(rng.normal(0, 0.6, len(labels)) + np.asarray(shift)[labels])))


def test_lower_spread_is_median_minus_the_5_percent_quantile():
    values = np.arange(101, dtype=float)  # median 50, 5 % quantile 5
    assert lower_spread(values) == pytest.approx(45.0)
    assert lower_spread(np.array([3.0])) == 0.0
    assert logit_ranks(np.array([0.5]))[0] == pytest.approx(0.0)


def test_a_trigger_group_in_the_target_class_is_poisoned_and_listed():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(5), 200)
    fit = _ranks(labels, [0.0, -0.3, 0.2, 0.1, 0.0], rng)  # honest difficulty differences
    poison = np.flatnonzero(labels == 2)[:60]
    fit[poison] = 1 / (1 + np.exp(-rng.normal(-3.5, 0.4, len(poison))))  # fitted better than almost anything
    v = attack_verdict(Evidence(labels, 2, fit, vote_share=0.9, estimates_agree=True, loss_gap=1.0))
    assert v.verdict == "poisoned" and v.score >= POISONED_SCORE
    assert v.inputs["widest_class"] == 2
    listed = np.flatnonzero(v.suspicious)
    assert set(poison) <= set(listed) and len(listed) <= len(poison) * 1.15
    assert (v.suspicion[labels != 2] == 0).all() and v.suspicion[poison].min() > v.suspicion[labels == 2].mean()


def test_classes_that_differ_only_in_difficulty_are_clean():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(6), 250)
    fit = _ranks(labels, [0.0, -0.8, 0.3, -0.7, 0.5, 0.1], rng)  # class 1 the easiest, 3 close behind
    v = attack_verdict(Evidence(labels, 1, fit, vote_share=0.5, estimates_agree=False, loss_gap=0.5))
    assert v.verdict == "clean" and v.score < CLEAN_SCORE
    assert not v.suspicious.any()
