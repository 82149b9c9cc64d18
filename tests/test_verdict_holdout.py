"""The held-out check as verdict evidence (method/holdout.py, method/verdict.py), on hand-made evidence:
a class whose first-fitted group the held-out model does not call its label, and calls the other
classes as surely and as varied as their own pictures, is 'poisoned', whichever class the vote
picked; a group it calls as one kind of picture (a class's own odd group) is no evidence, nor are
easy groups predicted as their label; with too few classes to tell, a group under the line is
'inconclusive'; the line follows the number of classes tested."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from bsd_audit.api import prepare
from bsd_audit.config import resolve_config
from bsd_audit.method.holdout import (called_as, class_contrast, group_variety, holdout_check, holdout_quarters,
                                      mann_whitney_z)
from bsd_audit.method.verdict import EASE_Z, GROUP_VARIETY, Evidence, attack_verdict, holdout_line, trigger_like
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


def _called(labels, prob, rng, sure=None, one_kind=None):
    """The class the held-out model calls each held-out sample among the others, and its probability:
    for an honest picture, a neighbour class (the next one) with a little of what its label did not
    get; ``sure`` (a mask): a picture of any other class, called it about as surely as that class's
    own pictures are; ``one_kind`` (a mask): one look-alike group, called the next class surely."""
    k = labels.max() + 1
    held = np.isfinite(prob)
    called = np.where(held, (labels + 1) % k, -1)
    called_prob = np.where(held, (1 - np.nan_to_num(prob)) * rng.uniform(0.2, 0.5, len(labels)), np.nan)
    if sure is not None:
        called[sure] = (labels[sure] + rng.integers(1, k, int(sure.sum()))) % k
        called_prob[sure] = rng.uniform(0.3, 0.75, int(sure.sum()))
    if one_kind is not None:
        called_prob[one_kind] = rng.uniform(0.4, 0.8, int(one_kind.sum()))
    return called, called_prob


def _foreign_group(labels, fit, prob, cls, n, rng):
    """Lower the label probability of the first ``n`` of class ``cls``'s first-fitted quarter, as a model
    trained without them gives pictures it does not recognise; their mask."""
    q = holdout_quarters(labels, fit, 0.5)
    group = np.flatnonzero((labels == cls) & (q == 0))[:n]
    prob[group] = rng.uniform(0.02, 0.15, len(group))
    mask = np.zeros(len(labels), bool)
    mask[group] = True
    return mask


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


def test_the_line_follows_the_number_of_classes_tested():
    assert holdout_line(40) < holdout_line(10) < holdout_line(2) < 0  # more classes tested: a lower z is needed
    assert holdout_line(10) == pytest.approx(-2.81, abs=0.01)  # Φ⁻¹(1 − 0.05 / 20): ten classes, two readings each


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
    mask = np.zeros(len(labels), bool)
    mask[poison] = True
    called, called_prob = _called(labels, prob, rng, sure=mask)  # ... and the class they depict gets much
    ev = Evidence(labels, 1, fit, vote_share=0.4, estimates_agree=False, loss_gap=0.3, second_likely=3,
                  holdout_prob=prob, holdout_share=0.5, holdout_called=called, holdout_called_prob=called_prob,
                  classes=[f"c{i}" for i in range(10)])
    v = attack_verdict(ev)
    assert v.verdict == "poisoned" and v.evidence == ["holdout"]
    assert v.suspected == 3 and v.target_in_doubt and v.inputs["holdout_class"] == 3
    assert v.inputs["holdout_z"] <= v.inputs["holdout_line"]
    assert 0.35 < v.inputs["holdout_called_as_sure"] < 0.65  # honest pictures of other classes: about 0.5
    assert v.inputs["holdout_called_spread"] > 0.85  # ... of all of them
    listed = np.flatnonzero(v.suspicious)
    assert (labels[listed] == 3).all()  # the list is drawn from the class the evidence names
    assert len(set(listed) & set(poison)) >= 0.8 * len(poison)
    assert "--target c3" in v.reason and "c1" in v.reason
    s = v.summary()
    assert s.suspected == "c3" and s.target_in_doubt and s.evidence == ["holdout"]
    # the same evidence with the right pick: poisoned, and nothing in doubt
    right = attack_verdict(Evidence(labels, 3, fit, 0.4, False, 0.3, holdout_prob=prob, holdout_called=called,
                                    holdout_called_prob=called_prob, classes=ev.classes))
    assert right.verdict == "poisoned" and right.suspected == 3 and not right.target_in_doubt


def _estimate(target, fit, prob, called, called_prob):
    from bsd_audit.method.target import TargetEstimate

    n = len(fit)
    return TargetEstimate(target=target, votes=np.zeros(10), confidence=0.4, isolated=np.arange(0),
                          isolated_loss_mean=0.0, loss_median=0.0, second_likely_per_epoch=np.array([3]),
                          second_likely_target=3, ce=np.zeros(n), sce=np.zeros(n), fit_rank=fit, holdout_prob=prob,
                          holdout_called=called, holdout_called_prob=called_prob)


def test_split_is_built_around_the_class_the_held_out_check_names_when_the_vote_was_wrong():
    """The wrong first pick of the test above, handed to split: it builds the split around class 3 (the
    main model's warm-up then leaves the trigger's class out), unless the user named a target."""
    from bsd_audit.api import split_target

    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(10), 250)
    classes = [f"c{i}" for i in range(10)]
    fit = _ranks(labels, [0.0, -0.6, 0.2, 0.1, 0.0, 0.3, -0.2, 0.1, 0.0, 0.2], rng)
    honest_fit, honest_prob = fit.copy(), _honest_holdout(labels, fit, rng)
    honest_called = _called(labels, honest_prob, rng)
    poison = np.flatnonzero(labels == 3)[:60]
    fit[poison] = 1 / (1 + np.exp(-rng.normal(-1.4, 0.5, len(poison))))
    prob = _honest_holdout(labels, fit, rng)
    prob[poison] = rng.uniform(0.0, 0.15, len(poison))
    mask = np.zeros(len(labels), bool)
    mask[poison] = True
    called, called_prob = _called(labels, prob, rng, sure=mask)

    used, source, v = split_target(_estimate(1, fit, prob, called, called_prob), labels, classes, None, "lga")
    assert (used, source) == (3, "holdout")
    assert v.verdict == "poisoned" and v.suspected == 3 and not v.target_in_doubt
    used, source, v = split_target(_estimate(1, fit, prob, called, called_prob), labels, classes, "c1", "lga")
    assert (used, source) == (1, "user") and v.target_in_doubt  # the user's class is kept, and the doubt said
    used, source, _ = split_target(_estimate(3, fit, prob, called, called_prob), labels, classes, None, "artifact")
    assert (used, source) == (3, "artifact")  # a right vote is kept
    used, source, v = split_target(_estimate(1, honest_fit, honest_prob, *honest_called), labels, classes, None, "lga")
    assert (used, source) == (1, "lga") and v.verdict == "clean"  # no trigger group anywhere: the vote stands


def _group_called_by(classes):
    """Ten classes; class 2's first-fitted group of 40 is unrecognised and called surely, each of its
    pictures as one of ``classes``."""
    rng = np.random.default_rng(5)
    labels = np.repeat(np.arange(10), 250)
    fit = _ranks(labels, [0.0, -0.6, 0.2, 0.1, 0.0, 0.3, -0.2, 0.1, 0.0, 0.2], rng)
    prob = _honest_holdout(labels, fit, rng)
    mask = _foreign_group(labels, fit, prob, 2, 40, rng)
    called, called_prob = _called(labels, prob, rng, sure=mask)
    called[mask] = rng.choice(classes, int(mask.sum()))
    return labels, fit, prob, called, called_prob


@pytest.mark.parametrize("variety, verdict", [(1.0, "poisoned"), (0.6, "clean")])
def test_among_look_alike_classes_a_trigger_group_is_told_by_how_varied_its_pictures_are(variety, verdict):
    """Photos of shirts, long sleeves and t-shirts: the held-out model calls a trigger group of every
    class's pictures by a few look-alike classes, so the calls do not spread (clothing at 128 px: spread
    0.65). Its pictures still vary as the other classes' do (variety about 1), where an odd group's are
    alike (0.56-0.72): the first is 'poisoned', the second a class's own odd group."""
    labels, fit, prob, called, called_prob = _group_called_by([3, 4, 5, 6])  # four look-alike classes
    varieties = np.full(10, 0.9)
    varieties[2] = variety
    profile = called_as(labels, fit, prob, called, called_prob, 0.5, variety=varieties)[2]
    assert profile.sure >= 0.25 and 0.5 <= profile.spread < 0.7 and profile.variety == variety
    v = attack_verdict(Evidence(labels, 1, fit, 0.4, False, 0.3, holdout_prob=prob, holdout_called=called,
                                holdout_called_prob=called_prob, holdout_variety=varieties,
                                classes=[f"c{i}" for i in range(10)]))
    assert v.inputs["holdout_class"] == 2 and v.inputs["holdout_group_variety"] == variety
    assert v.verdict == verdict
    if verdict == "poisoned":
        assert v.evidence == ["holdout"] and v.suspected == 2 and "as varied as the other classes'" in v.reason
    else:
        assert v.inputs["holdout_odd_groups"] == [2] and "odd group" in v.reason
    # without the pictures' reading the calls alone decide: not a trigger group
    v = attack_verdict(Evidence(labels, 1, fit, 0.4, False, 0.3, holdout_prob=prob, holdout_called=called,
                                holdout_called_prob=called_prob, classes=[f"c{i}" for i in range(10)]))
    assert v.verdict == "clean"


def test_a_classs_hard_pictures_called_one_neighbour_are_no_trigger_group_however_varied():
    """Honest dogs a model trained without them takes for cats: varied pictures (variety about 1), called
    surely, but all one neighbour (clean CIFAR-10, spread 0). Variety does not make them a trigger group."""
    labels, fit, prob, called, called_prob = _group_called_by([3])
    varieties = np.full(10, 1.0)
    v = attack_verdict(Evidence(labels, 1, fit, 0.4, False, 0.3, holdout_prob=prob, holdout_called=called,
                                holdout_called_prob=called_prob, holdout_variety=varieties,
                                classes=[f"c{i}" for i in range(10)]))
    assert v.inputs["holdout_z"] <= v.inputs["holdout_line"] and v.inputs["holdout_called_spread"] < 0.5
    assert v.verdict == "clean" and v.inputs["holdout_odd_groups"] == [2]


def _pictures(kind, n, rng):
    """n 16 x 16 pictures: 'varied' each its own random scene of blobs; 'alike' one scene with a little noise."""
    base = rng.integers(0, 256, (3, 4, 4))
    out = []
    for _ in range(n):
        scene = rng.integers(0, 256, (3, 4, 4)) if kind == "varied" else np.clip(base + rng.normal(0, 12, base.shape), 0, 255)
        out.append(np.kron(scene, np.ones((4, 4))))
    return np.stack(out)


def test_group_variety_reads_a_group_from_every_class_as_varied_and_one_kind_of_picture_as_alike():
    """The first-fitted, unrecognised group of class 0 is pictures like every other class's (a trigger
    group), class 1's is one scene repeated (an odd group): variety about 1 against well under the line."""
    from bsd_audit.data.memory import dataset_from_arrays
    rng = np.random.default_rng(0)
    k, per = 5, 80
    labels = np.repeat(np.arange(k), per)
    images = _pictures("varied", k * per, rng)
    first = {c: np.flatnonzero(labels == c)[:per // 4] for c in range(k)}
    images[first[1]] = _pictures("alike", len(first[1]), rng)
    fit = np.linspace(0, 1, per)[np.tile(np.arange(per), k)]  # each class's first listed is fitted first
    q = holdout_quarters(labels, fit, 0.5)
    prob = np.where(q >= 0, 0.6, np.nan)
    prob[first[0]] = prob[first[1]] = 0.05  # both groups unrecognised by the held-out model
    ds = dataset_from_arrays(images.astype(np.uint8), labels, [f"c{c}" for c in range(k)], 16)
    variety = group_variety(ds, labels, fit, prob, 0.5, None, seed=0)
    assert variety[0] >= GROUP_VARIETY > 0.72 > variety[1]
    assert variety[0] == group_variety(ds, labels, fit, prob, 0.5, None, seed=0)[0]  # a function of the seed


def test_a_trigger_group_smaller_than_the_quarter_is_read_in_the_quarters_first_half():
    """1 % poison in 10,000 images: the trigger group is a third of the target's first-fitted quarter,
    and the quarter's honest part, the class's easiest pictures, is called its label more surely than
    the next quarter. Read as a whole the quarter stays over the line; its first-fitted half, where the
    trigger group sits, does not, and the verdict is 'poisoned'."""
    rng = np.random.default_rng(11)
    labels = np.repeat(np.arange(10), 1100)
    fit = _ranks(labels, np.zeros(10), rng)
    q = holdout_quarters(labels, fit, 0.5)
    prob = np.where(q >= 0, np.clip(rng.normal(0.34, 0.15, len(labels)), 0.001, 0.999), np.nan)
    first = np.flatnonzero((labels == 0) & (q == 0))
    first = first[np.argsort(fit[first], kind="stable")]
    group, easy = first[:99], first[99:]  # the trigger group is fitted first
    prob[group] = rng.uniform(0.001, 0.02, len(group))
    prob[easy] = np.clip(rng.normal(0.56, 0.15, len(easy)), 0.001, 0.999)
    whole_quarter = mann_whitney_z(prob[first], prob[(labels == 0) & (q == 1)])
    assert whole_quarter > holdout_line(10)  # diluted by the easy pictures
    z = class_contrast(labels, fit, prob, 0.5)
    assert z[0] < holdout_line(10) and z[0] < whole_quarter
    called, called_prob = _called(labels, prob, rng, sure=np.isin(np.arange(len(labels)), group))
    v = attack_verdict(Evidence(labels, 3, fit, 0.4, False, 0.3, holdout_prob=prob, holdout_called=called,
                                holdout_called_prob=called_prob, classes=[f"c{i}" for i in range(10)]))
    assert v.verdict == "poisoned" and v.evidence == ["holdout"] and v.suspected == 0 and v.target_in_doubt


@pytest.mark.parametrize("kind", ["unsure", "one kind"])
def test_a_classs_own_odd_group_is_no_evidence(kind):
    """A class's own odd group fitted first (hats on one background; deer on grass): the held-out model
    does not call it by its label, and calls it either nothing with conviction or one neighbouring
    class. Under the line, but not a trigger group of other classes' pictures: clean, the group named."""
    rng = np.random.default_rng(7)
    labels = np.repeat(np.arange(10), 250)
    fit = _ranks(labels, [0.0, -0.6, 0.2, 0.1, 0.0, 0.3, -0.2, 0.1, 0.0, 0.2], rng)
    prob = _honest_holdout(labels, fit, rng)
    mask = _foreign_group(labels, fit, prob, 2, 40, rng)
    called, called_prob = _called(labels, prob, rng, one_kind=mask if kind == "one kind" else None)
    profile = called_as(labels, fit, prob, called, called_prob, 0.5)[2]
    assert not trigger_like(profile)
    assert (profile.spread < 0.5) if kind == "one kind" else (profile.sure < 0.25)
    v = attack_verdict(Evidence(labels, 1, fit, 0.4, False, 0.3, holdout_prob=prob, holdout_called=called,
                                holdout_called_prob=called_prob, classes=[f"c{i}" for i in range(10)]))
    assert v.inputs["holdout_z"] <= v.inputs["holdout_line"] and v.inputs["holdout_class"] == 2
    assert v.verdict == "clean" and v.evidence == [] and not v.target_in_doubt and v.suspected == 1
    assert v.inputs["holdout_odd_groups"] == [2] and "odd group" in v.reason and "c2" in v.reason


def test_with_too_few_classes_a_group_under_the_line_is_inconclusive():
    """Three classes: a trigger group could come from two others only, so how it is called cannot tell it
    from an odd group. The verdict asks, and names the class."""
    rng = np.random.default_rng(9)
    labels = np.repeat(np.arange(3), 400)
    fit = _ranks(labels, [0.0, 0.2, -0.1], rng)
    prob = _honest_holdout(labels, fit, rng)
    mask = _foreign_group(labels, fit, prob, 2, 60, rng)
    called, called_prob = _called(labels, prob, rng, sure=mask)
    v = attack_verdict(Evidence(labels, 0, fit, 0.4, False, 0.3, holdout_prob=prob, holdout_called=called,
                                holdout_called_prob=called_prob, classes=["a", "b", "c"]))
    assert v.inputs["holdout_z"] <= v.inputs["holdout_line"]
    assert v.verdict == "inconclusive" and v.suspected == 2 and v.target_in_doubt and "--target c" in v.reason


def test_easy_groups_that_the_held_out_model_recognises_are_clean():
    rng = np.random.default_rng(4)
    labels = np.repeat(np.arange(10), 200)
    fit = _ranks(labels, [0.0, -0.8, 0.3, -0.5, 0.5, 0.1, 0.0, 0.2, -0.1, 0.3], rng)
    v = attack_verdict(Evidence(labels, 1, fit, 0.5, False, 0.3, holdout_prob=_honest_holdout(labels, fit, rng)))
    assert v.verdict == "clean" and v.evidence == [] and not v.target_in_doubt
    assert v.inputs["holdout_tested"] == 10 and v.inputs["holdout_z"] > v.inputs["holdout_line"]
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
    rt, ds, norm, cfg, _ = prepare(tmp_path / "data", cfg, Progress())
    fit = np.random.default_rng(0).uniform(size=len(ds))
    torch.manual_seed(11)
    before = torch.random.get_rng_state()
    first, called, called_prob = holdout_check(ds, norm, cfg, rt, fit)
    assert torch.equal(torch.random.get_rng_state(), before)
    again = holdout_check(ds, norm, cfg, rt, fit)
    np.testing.assert_array_equal(first, again[0])  # deterministic for the same data, config and seed
    np.testing.assert_array_equal(called, again[1])
    held = holdout_quarters(ds.labels.numpy(), fit, cfg.holdout_share) >= 0
    assert np.isfinite(first[held]).all() and np.isnan(first[~held]).all()
    assert ((first[held] >= 0) & (first[held] <= 1)).all()
    labels = ds.labels.numpy()
    assert (called[held] != labels[held]).all() and (called[held] >= 0).all() and (called[~held] == -1).all()
    assert (called_prob[held] <= 1 - first[held] + 1e-6).all()  # the others share what the label did not get


def test_the_check_trains_in_fp32_under_a_bf16_run(tmp_path):
    """Its line was set on fp32 runs, and under bf16 autocast its z on a trigger group was weaker: a bf16
    run's check gives what an fp32 run's does, to the bit."""
    make_tiny_poisoned(tmp_path / "data", per_class=24)
    fit = None
    out = {}
    for precision in ("fp32", "bf16"):
        cfg = resolve_config("cpu", {**TINY_OVERRIDES, "holdout_epochs": 2, "precision": precision})
        rt, ds, norm, cfg, _ = prepare(tmp_path / "data", cfg, Progress())
        assert rt.precision == precision
        fit = np.random.default_rng(0).uniform(size=len(ds)) if fit is None else fit
        out[precision] = holdout_check(ds, norm, cfg, rt, fit)
    for a, b in zip(out["fp32"], out["bf16"]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("target_z_sign", [+1, 0, -1])
def test_a_tail_the_held_out_model_explains_as_ease_is_not_poisoned(target_z_sign):
    """A long tail in the target class: a group fitted far earlier than the rest. When a model trained
    without that group calls it by its label more surely than the class's next pictures (z > EASE_Z),
    the group is the class's most typical pictures: the tail alone does not say poisoned. When it does
    not (a clean-label trigger the model never learnt: z about 0), the tail says poisoned."""
    rng = np.random.default_rng(10)
    labels = np.repeat(np.arange(10), 250)
    fit = _ranks(labels, [0.0, 0.1, 0.2, 0.1, 0.0, 0.3, -0.2, 0.1, 0.0, 0.2], rng)
    early = np.flatnonzero(labels == 4)[:40]
    fit[early] = 1 / (1 + np.exp(-rng.normal(-4.0, 0.3, len(early))))  # far ahead of its class
    prob = _honest_holdout(labels, fit, rng)
    q = holdout_quarters(labels, fit, 0.5)
    first, second = (labels == 4) & (q == 0), (labels == 4) & (q == 1)
    # the group as the next quarter's pictures are (z about 0), or surer, or less sure
    prob[first] = np.clip(rng.permutation(prob[second])[:first.sum()] + target_z_sign * 0.2, 0.01, 0.99)
    called, called_prob = _called(labels, prob, rng)
    v = attack_verdict(Evidence(labels, 4, fit, 0.6, True, 0.3, holdout_prob=prob, holdout_called=called,
                                holdout_called_prob=called_prob, classes=[f"c{i}" for i in range(10)]))
    assert v.score >= 2.3
    if target_z_sign > 0:
        assert v.inputs["target_holdout_z"] > EASE_Z and v.inputs["tail_explained_by_ease"]
        assert v.verdict == "inconclusive" and v.evidence == [] and "typical pictures" in v.reason
    else:
        assert v.inputs["target_holdout_z"] < EASE_Z and not v.inputs["tail_explained_by_ease"]
        assert v.verdict == "poisoned" and v.evidence == ["tail"]


def test_copies_of_a_picture_count_once():
    """Scraped data repeats itself: six hard pictures of class 0, each stored six times, are fitted first
    and held out together. Counted 36 times they read as a foreign group called as other classes;
    counted once each (copy_of), the class is as honest as the rest."""
    rng = np.random.default_rng(12)
    labels = np.repeat(np.arange(10), 150)
    fit = _ranks(labels, [0.0, -0.6, 0.2, 0.1, 0.0, 0.3, -0.2, 0.1, 0.0, 0.2], rng)
    originals = np.flatnonzero(labels == 0)[:6]
    copies = np.repeat(originals, 5)
    labels = np.r_[labels, labels[copies]]
    fit = np.r_[fit, fit[copies]]
    fit[np.r_[originals, np.arange(1500, 1530)]] = 0.001  # memorised first, with their copies
    prob = _honest_holdout(labels, fit, rng)
    prob[originals] = rng.uniform(0.02, 0.15, 6)  # hard pictures the model does not recognise
    called, called_prob = _called(labels, prob, rng, sure=np.isin(np.arange(len(labels)), originals))
    for k, i in enumerate(np.arange(1500, 1530)):  # a copy gets exactly what its picture gets
        prob[i], called[i], called_prob[i] = prob[copies[k]], called[copies[k]], called_prob[copies[k]]
    copy_of = np.r_[np.arange(1500), copies]
    kw = dict(holdout_prob=prob, holdout_called=called, holdout_called_prob=called_prob,
              classes=[f"c{i}" for i in range(10)])
    counted_each = attack_verdict(Evidence(labels, 1, fit, 0.4, False, 0.3, **kw))
    assert counted_each.inputs["holdout_class"] == 0 and counted_each.inputs["holdout_z"] <= counted_each.inputs["holdout_line"]
    once = attack_verdict(Evidence(labels, 1, fit, 0.4, False, 0.3, copy_of=copy_of, **kw))
    z = class_contrast(labels, fit, prob, 0.5, copy_of)
    assert z[0] > holdout_line(10) and once.verdict == "clean" and 0 not in once.inputs["holdout_odd_groups"]


def test_copy_of_names_each_pictures_first_copy_within_its_class(tmp_path):
    """Identical decoded pixels in one class are copies; the same picture under another label is not
    (that is a label conflict, evidence in its own right)."""
    make_tiny_poisoned(tmp_path / "data", per_class=12)
    root = tmp_path / "data"
    ant = sorted((root / "ant").iterdir())
    shutil.copy2(ant[3], root / "ant" / "zz-copy-a.png")
    shutil.copy2(ant[3], root / "ant" / "zz-copy-b.png")
    shutil.copy2(ant[3], root / "bee" / "zz-same-picture.png")
    cfg = resolve_config("cpu", TINY_OVERRIDES)
    _, ds, _, _, _ = prepare(root, cfg, Progress())
    copy_of = ds.copy_of()
    where = {p: i for i, p in enumerate(ds.paths)}
    first = where[f"ant/{ant[3].name}"]
    assert copy_of[where["ant/zz-copy-a.png"]] == first and copy_of[where["ant/zz-copy-b.png"]] == first
    assert copy_of[where["bee/zz-same-picture.png"]] == where["bee/zz-same-picture.png"]
    assert (copy_of != np.arange(len(ds))).sum() == 2
