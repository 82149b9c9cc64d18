"""The attack-present verdict and the suspicious list (method/verdict.py), on hand-made warm-up evidence: a
target class with a group fitted far better than any honest class is 'poisoned' and that group is
the list; classes that differ only in difficulty are 'clean' with an empty list."""

from __future__ import annotations

import numpy as np
import pytest

from bsd_audit.metrics import precision_at_recall
from bsd_audit.method.verdict import (CLEAN_SCORE, MIN_REFERENCE_CLASSES, POISONED_SCORE, Evidence, attack_verdict,
                               list_line, logit_ranks, lower_spread)


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


def _late_fitted_group(rng):
    """A target class whose poison the warm-up fits only moderately early (as Blended): on the fit rank
    alone it overlaps the honest tail; the main model's indicator I is low on it (the two models disagree)."""
    labels = np.repeat(np.arange(5), 300)
    fit = _ranks(labels, [0.0, -0.3, 0.2, 0.1, 0.0], rng)
    poison = np.flatnonzero(labels == 2)[:100]
    fit[poison] = 1 / (1 + np.exp(-rng.normal(-2.0, 0.8, len(poison))))
    indicator = rng.normal(-2.0, 1.0, len(labels))  # honest: I scattered around the class's level
    indicator[labels == 2] = rng.normal(-4.2, 0.25, 300)
    indicator[poison] = rng.normal(-4.6, 0.15, len(poison))  # lower still: only the altruistic model fits them
    return labels, fit, indicator, poison


def test_the_indicator_lifts_a_late_fitted_group_onto_the_list():
    labels, fit, indicator, poison = _late_fitted_group(np.random.default_rng(4))
    truth = np.zeros(len(labels), dtype=bool)
    truth[poison] = True
    alone = attack_verdict(Evidence(labels, 2, fit, 0.9, True, 1.0))
    both = attack_verdict(Evidence(labels, 2, fit, 0.9, True, 1.0, indicator=indicator))
    assert alone.verdict == both.verdict == "poisoned"  # the verdict itself reads the warm-up only
    assert not alone.inputs["list_uses_indicator"] and both.inputs["list_uses_indicator"]
    assert precision_at_recall(both.suspicion, truth) > precision_at_recall(alone.suspicion, truth)
    tp = int((both.suspicious & truth).sum())
    assert tp / both.suspicious.sum() >= 0.9 and tp / truth.sum() >= 0.9
    assert (both.suspicion[labels != 2] == 0).all() and (both.suspicion[labels == 2] > 0).all()


def test_an_indicator_that_is_missing_or_flat_leaves_the_fit_rank_list():
    labels, fit, indicator, _ = _late_fitted_group(np.random.default_rng(4))
    alone = attack_verdict(Evidence(labels, 2, fit, 0.9, True, 1.0))
    for ind in (np.full(len(labels), np.nan), np.full(len(labels), -3.0)):  # stopped before stage 2; no spread
        v = attack_verdict(Evidence(labels, 2, fit, 0.9, True, 1.0, indicator=ind))
        assert not v.inputs["list_uses_indicator"]
        assert (v.suspicious == alone.suspicious).all() and np.allclose(v.suspicion, alone.suspicion)


def test_precision_at_recall_reads_the_shortest_prefix_that_reaches_the_recall():
    truth = np.array([1, 0, 1, 1, 0, 0, 1, 0], dtype=bool)  # 4 poisoned
    score = np.array([8, 7, 6, 5, 4, 3, 2, 1], dtype=float)  # ranked in index order
    assert precision_at_recall(score, truth, 0.5) == pytest.approx(2 / 3)  # 2 poisoned within the first 3
    assert precision_at_recall(score, truth, 0.75) == pytest.approx(3 / 4)
    assert precision_at_recall(score, truth, 1.0) == pytest.approx(4 / 7)
    assert precision_at_recall(score, np.zeros(8, dtype=bool)) is None


def test_the_split_list_keeps_its_precision_when_the_poison_is_a_small_share_of_the_target():
    # 20 poisoned among 320 target samples: the class median hardly moves, so a line a fixed depth
    # under it cuts into the honest part; the split's line anchors on the honest part instead
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(5), 300)
    fit = _ranks(labels, [0.0, -0.3, 0.2, 0.1, 0.0], rng)
    poison = np.flatnonzero(labels == 2)[:20]
    fit[poison] = 1 / (1 + np.exp(-rng.normal(-4.0, 0.4, len(poison))))
    indicator = rng.normal(-2.0, 1.0, len(labels))
    indicator[labels == 2] = rng.normal(-4.2, 0.25, 300)
    indicator[poison] = rng.normal(-4.6, 0.15, len(poison))
    warmup = attack_verdict(Evidence(labels, 2, fit, 0.9, True, 1.0))
    final = attack_verdict(Evidence(labels, 2, fit, 0.9, True, 1.0, indicator=indicator))
    assert final.verdict == "poisoned"
    assert set(poison) <= set(np.flatnonzero(final.suspicious))
    honest_listed = int(final.suspicious.sum()) - len(poison)
    assert honest_listed <= 0.2 * final.suspicious.sum()  # precision at least 0.8
    assert int(warmup.suspicious.sum()) - len(poison) > 3 * honest_listed  # the warm-up list favours recall


def test_a_high_score_against_too_few_classes_is_only_inconclusive():
    # the same trigger group as above, with three other classes instead of four: their median is too
    # thin a yardstick to tell a trigger from one class's own easy sub-group
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(MIN_REFERENCE_CLASSES), 200)
    fit = _ranks(labels, [0.0, -0.3, 0.2, 0.1], rng)
    poison = np.flatnonzero(labels == 2)[:60]
    fit[poison] = 1 / (1 + np.exp(-rng.normal(-3.5, 0.4, len(poison))))
    v = attack_verdict(Evidence(labels, 2, fit, vote_share=0.9, estimates_agree=True, loss_gap=1.0))
    assert v.score >= POISONED_SCORE and v.verdict == "inconclusive"
    assert v.inputs["reference_classes"] == MIN_REFERENCE_CLASSES - 1
    assert "only 3 other classes" in v.reason and v.suspicious[poison].all()


def test_poison_that_outnumbers_the_target_class_is_still_poisoned_and_listed():
    # 400 poisoned images relabelled into a class of 200 (20 % of a 10-class set): the class median
    # lies inside the poison, so the median-anchored width shrinks; the upper anchors still see it
    rng = np.random.default_rng(5)
    labels = np.repeat(np.arange(10), 200)
    fit = _ranks(labels, rng.normal(0, 0.3, 10), rng)
    poison = np.arange(len(labels), len(labels) + 400)
    labels = np.concatenate([labels, np.full(400, 2)])
    fit = np.concatenate([fit, 1 / (1 + np.exp(-rng.normal(-3.5, 0.6, 400)))])
    v = attack_verdict(Evidence(labels, 2, fit, vote_share=1.0, estimates_agree=True, loss_gap=1.0))
    anchors = v.inputs["score_by_anchor"]
    assert anchors["q50"] < CLEAN_SCORE <= POISONED_SCORE <= v.score
    assert v.score == pytest.approx(max(anchors.values()), abs=1e-4)
    assert v.verdict == "poisoned"
    truth = np.zeros(len(labels), dtype=bool)
    truth[poison] = True
    tp = int((v.suspicious & truth).sum())
    assert tp >= 0.9 * len(poison) and tp >= 0.9 * v.suspicious.sum()


def test_classes_too_small_to_have_a_tail_are_no_yardstick():
    # three real classes, then two one-image classes: they have no lower tail (spread 0), and as
    # yardsticks they would halve the honest reference and lift the count of reference classes to 4
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(3), 200)
    fit = _ranks(labels, [0.0, -0.3, 0.2], rng)
    base = attack_verdict(Evidence(labels, 1, fit, 0.9, True, 1.0))
    labels2 = np.concatenate([labels, [3, 4]])
    fit2 = np.concatenate([fit, [0.5, 0.5]])
    v = attack_verdict(Evidence(labels2, 1, fit2, 0.9, True, 1.0))
    assert v.inputs["reference_classes"] == base.inputs["reference_classes"] == 2
    assert v.score == pytest.approx(base.score) and v.verdict == base.verdict


def test_the_list_line_needs_a_yardstick():
    x = np.random.default_rng(2).normal(size=300)
    assert list_line(x, 0.0, 1.2) == float("-inf")  # nothing listed, rather than all but the top
    line = list_line(x, 1.0, 1.2)
    assert np.median(x[x >= line]) - 1.2 == pytest.approx(line)  # a fixed point: the median above it, less the depth


def test_every_class_is_scored_as_a_candidate_target():
    """A vote for the wrong class still shows the poisoned one: each class's score as the target is
    reported, the used target's equal to the verdict's score."""
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(6), 200)
    fit = _ranks(labels, np.zeros(6), rng)
    poisoned = np.flatnonzero(labels == 4)[:60]
    fit[poisoned] = rng.uniform(0.0, 0.02, len(poisoned))  # class 4 holds a group fitted first
    v = attack_verdict(Evidence(labels, 1, fit, 0.3, False, 0.1))  # the vote picked class 1
    scores = v.inputs["class_scores"]
    assert len(scores) == 6 and scores[1] == round(v.score, 4)
    assert int(np.argmax(scores)) == 4 and scores[4] >= POISONED_SCORE > v.score
