"""The held-out check as verdict evidence (method/holdout.py, method/verdict.py), on hand-made evidence:
a class whose first-fitted group is not predicted as its label by the held-out model is 'poisoned',
whichever class the vote picked; easy groups predicted as their label are no evidence; the lines
follow the number of classes tested."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bsd_audit.api import prepare
from bsd_audit.config import resolve_config
from bsd_audit.method.holdout import class_contrast, holdout_check, holdout_quarters, mann_whitney_z
from bsd_audit.method.verdict import Evidence, attack_verdict, holdout_lines
from bsd_audit.training.progress import Progress
from conftest import TINY_OVERRIDES, make_tiny_poisoned


def _ranks(labels, shift, rng):
    return 1 / (1 + np.exp(-(rng.normal(0, 0.6, len(labels)) + np.asarray(shift)[labels])))


def _honest_holdout(labels, fit_rank, rng, share=0.5):
    """What the held-out model gives honest classes: a class-specific level, the first-fitted quarter a
    little surer than the next (easy pictures), NaN on the samples it trained on."""
    q = holdout_quarters(labels, fit_rank, share)
    level = rng.uniform(0.3, 0.7, labels.max() + 1)[labels]
    prob = np.clip(level + np.where(q == 0, 0.08, 0.0) + rng.normal(0, 0.15, len(labels)), 0.001, 0.999)
    return np.where(q >= 0, prob, np.nan)


def test_quarters_hold_out_each_class_first_fitted_share():
    labels = np.repeat([0, 1], [8, 12])
    fit = np.r_[np.linspace(0, 1, 8), np.linspace(1, 0, 12)]
    q = holdout_quarters(labels, fit, 0.5)
    assert (q[:2] == 0).all() and (q[2:4] == 1).all() and (q[4:8] == -1).all()  # class 0: its 4 lowest ranks
    assert (q[8:14] == -1).all() and (q[14:17] == 1).all() and (q[17:] == 0).all()  # class 1 ranks descend


def test_mann_whitney_z_is_negative_when_the_first_sample_is_lower():
    rng = np.random.default_rng(0)
    low, high = rng.normal(0, 1, 60), rng.normal(1.5, 1, 60)
    assert mann_whitney_z(low, high) < -5 < 5 < mann_whitney_z(high, low)
    assert abs(mann_whitney_z(np.ones(20), np.ones(20))) < 1e-9  # all tied: no evidence either way


def test_the_lines_follow_the_number_of_classes_tested():
    p10, w10 = holdout_lines(10)
    p40, w40 = holdout_lines(40)
    assert p40 < p10 < w10 < 0 and p40 < w40  # more classes tested: a lower z is needed
    assert p10 == pytest.approx(-3.09, abs=0.01)  # Φ⁻¹(1 − 0.01 / 10)


def test_a_wrong_first_pick_with_the_poison_in_another_class_is_flagged_there():
    """The vote picked class 1 (an easy class); the trigger sits in class 3, its samples fitted early
    but only moderately (a blended trigger: the tail alone stays under its line). The held-out model
    calls those samples what they depict, not 3."""
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(10), 250)
    fit = _ranks(labels, [0.0, -0.6, 0.2, 0.1, 0.0, 0.3, -0.2, 0.1, 0.0, 0.2], rng)
    poison = np.flatnonzero(labels == 3)[:60]
    fit[poison] = 1 / (1 + np.exp(-rng.normal(-1.4, 0.5, len(poison))))
    prob = _honest_holdout(labels, fit, rng)
    prob[poison] = rng.uniform(0.0, 0.15, len(poison))  # foreign pictures: the label gets little
    ev = Evidence(labels, 1, fit, vote_share=0.4, estimates_agree=False, loss_gap=0.3, second_likely=3,
                  holdout_prob=prob, holdout_share=0.5, classes=[f"c{i}" for i in range(10)])
    v = attack_verdict(ev)
    assert v.verdict == "inconclusive" and v.evidence == ["holdout"]  # the check alone: a gate fails on exit 6
    assert v.suspected == 3 and v.target_in_doubt and v.inputs["holdout_class"] == 3
    assert v.inputs["holdout_z"] <= v.inputs["holdout_line"]
    listed = np.flatnonzero(v.suspicious)
    assert (labels[listed] == 3).all()  # the list is drawn from the class the evidence names
    assert len(set(listed) & set(poison)) >= 0.8 * len(poison)
    assert "--target c3" in v.reason and "c1" in v.reason
    s = v.summary()
    assert s.suspected == "c3" and s.target_in_doubt and s.evidence == ["holdout"]
    # the same evidence with the right pick: poisoned, and nothing in doubt
    right = attack_verdict(Evidence(labels, 3, fit, 0.4, False, 0.3, holdout_prob=prob, classes=ev.classes))
    assert right.verdict == "inconclusive" and right.suspected == 3 and not right.target_in_doubt


def test_weak_evidence_in_another_class_is_inconclusive_and_names_that_class():
    """A trigger learned late (Blended at a low blend): the check's z in the true class sits between its
    inconclusive and poisoned lines. The verdict is inconclusive, and it points to that class, not the vote's."""
    rng = np.random.default_rng(7)
    labels = np.repeat(np.arange(10), 250)
    fit = _ranks(labels, [0.0, -0.6, 0.2, 0.1, 0.0, 0.3, -0.2, 0.1, 0.0, 0.2], rng)
    prob = _honest_holdout(labels, fit, rng)
    q = holdout_quarters(labels, fit, 0.5)
    first = np.flatnonzero((labels == 2) & (q == 0))
    z_at = {}
    for k in range(len(first) + 1):  # lower the first quarter's probabilities until z sits between the lines
        trial = prob.copy()
        trial[first[:k]] = 0.01
        z = class_contrast(labels, fit, trial, 0.5)[2]
        z_at[k] = (z, trial)
        if z <= holdout_lines(10)[1]:
            break
    z, trial = z_at[k]
    poisoned_line, weak_line = holdout_lines(10)
    assert poisoned_line < z <= weak_line
    v = attack_verdict(Evidence(labels, 1, fit, 0.4, False, 0.3, holdout_prob=trial, classes=[f"c{i}" for i in range(10)]))
    assert v.verdict == "inconclusive" and v.suspected == 2 and v.target_in_doubt
    assert "--target c2" in v.reason and v.evidence == []


def test_easy_groups_that_the_held_out_model_recognises_are_clean():
    rng = np.random.default_rng(4)
    labels = np.repeat(np.arange(10), 200)
    fit = _ranks(labels, [0.0, -0.8, 0.3, -0.5, 0.5, 0.1, 0.0, 0.2, -0.1, 0.3], rng)
    v = attack_verdict(Evidence(labels, 1, fit, 0.5, False, 0.3, holdout_prob=_honest_holdout(labels, fit, rng)))
    assert v.verdict == "clean" and v.evidence == [] and not v.target_in_doubt
    assert v.inputs["holdout_tested"] == 10 and v.inputs["holdout_z"] > v.inputs["holdout_weak_line"]
    assert not v.suspicious.any()


def test_classes_too_small_for_two_quarters_are_not_tested():
    rng = np.random.default_rng(5)
    labels = np.repeat(np.arange(4), [200, 200, 30, 200])  # class 2: 7 per quarter
    fit = _ranks(labels, [0.0, 0.1, 0.0, 0.2], rng)
    prob = _honest_holdout(labels, fit, rng)
    prob[labels == 2] = np.where(np.isnan(prob[labels == 2]), np.nan, 0.01)
    z = class_contrast(labels, fit, prob, 0.5)
    assert set(z) == {0, 1, 3}


def test_without_the_check_the_verdict_reads_the_tail_alone():
    rng = np.random.default_rng(6)
    labels = np.repeat(np.arange(6), 200)
    fit = _ranks(labels, [0.0, 0.1, 0.0, 0.2, 0.1, 0.0], rng)
    nan = np.full(len(labels), np.nan)
    v = attack_verdict(Evidence(labels, 0, fit, 0.5, True, 0.3, holdout_prob=nan))
    assert v.inputs["holdout_tested"] == 0 and v.verdict == "clean"


def test_the_check_leaves_the_splits_generators_as_it_found_them(tmp_path):
    """Its model and batches draw from seeds of their own, so a split runs the same with or without it."""
    make_tiny_poisoned(tmp_path / "data", per_class=24)
    cfg = resolve_config("cpu", {**TINY_OVERRIDES, "holdout_epochs": 2})
    rt, ds, norm = prepare(tmp_path / "data", cfg, Progress())
    fit = np.random.default_rng(0).uniform(size=len(ds))
    torch.manual_seed(11)
    before = torch.random.get_rng_state()
    first = holdout_check(ds, norm, cfg, rt, fit)
    assert torch.equal(torch.random.get_rng_state(), before)
    again = holdout_check(ds, norm, cfg, rt, fit)
    np.testing.assert_array_equal(first, again)  # deterministic for the same data, config and seed
    held = holdout_quarters(ds.labels.numpy(), fit, cfg.holdout_share) >= 0
    assert np.isfinite(first[held]).all() and np.isnan(first[~held]).all()
    assert ((first[held] >= 0) & (first[held] <= 1)).all()
