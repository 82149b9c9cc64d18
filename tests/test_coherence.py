"""Trigger coherence (method/coherence.py) and what the verdict makes of it (method/verdict.py)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bsd_audit.data.memory import dataset_from_arrays
from bsd_audit.method.coherence import (GROUP_NAMES, LAST_FITTED, LIKENESS, UNRECOGNISED, mean_cosine,
                                       trigger_coherence)
from bsd_audit.method.holdout import holdout_quarters
from bsd_audit.method.verdict import COHERENCE_Z, Evidence, attack_verdict, trigger_line

K, PER, SIZE = 5, 120, 32


def _scenes(n, rng):
    """n varied 32 x 32 pictures: a smooth random scene each, with its own fine grain (a camera's noise)."""
    coarse = torch.tensor(rng.uniform(0, 255, (n, 3, 4, 4)), dtype=torch.float32)
    smooth = F.interpolate(coarse, size=(SIZE, SIZE), mode="bilinear", align_corners=False).numpy()
    return smooth + rng.normal(0, 20, smooth.shape)


def _set(rng):
    """Five classes. The held-out model does not recognise a group of each of classes 0, 1 and 2:
    class 0's are pictures with one noise pattern blended in at 0.2 (a trigger group), class 1's are
    one scene again and again (an odd group), class 2's are honest varied pictures."""
    labels = np.repeat(np.arange(K), PER)
    images = _scenes(K * PER, rng)
    fit = np.linspace(0, 1, PER)[np.tile(np.arange(PER), K)]  # each class's first listed is fitted first
    q = holdout_quarters(labels, fit, 0.5)
    groups = {c: np.flatnonzero(labels == c)[:24] for c in range(3)}
    pattern = rng.uniform(0, 255, (3, SIZE, SIZE))
    images[groups[0]] = 0.8 * images[groups[0]] + 0.2 * pattern
    base = _scenes(1, rng)[0]
    images[groups[1]] = base + rng.normal(0, 3, (len(groups[1]), 3, SIZE, SIZE))
    prob = np.where(q >= 0, 0.7, np.nan)
    called = np.where(q >= 0, (labels + 1) % K, -1)
    for c, g in groups.items():
        prob[g] = 0.01
        called[g] = (c + rng.integers(1, K, len(g))) % K
    ds = dataset_from_arrays(np.clip(images, 0, 255).astype(np.uint8), labels, [f"c{c}" for c in range(K)], SIZE)
    return ds, labels, fit, prob, called, groups


def test_mean_cosine_reads_the_pairs_from_the_sum():
    rng = np.random.default_rng(0)
    u = rng.normal(size=(7, 5))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    pairs = [u[i] @ u[j] for i in range(7) for j in range(7) if i < j]
    assert mean_cosine(u.sum(0), 7) == pytest.approx(np.mean(pairs))


def test_pictures_of_every_class_sharing_one_pattern_are_coherent_and_their_match_lists_them():
    """The blended group is coherent far past the line and not alike; the honest group is not coherent;
    the odd group is alike, so its class reads its honest last-fitted pictures instead. The trigger's
    direction comes from the blended group, and its match puts every blended picture over the line
    drawn from the other classes and no honest picture of class 0."""
    rng = np.random.default_rng(1)
    ds, labels, fit, prob, called, groups = _set(rng)
    co = trigger_coherence(ds, labels, fit, prob, called, 0.5, None, seed=0)
    assert co.z[0] >= COHERENCE_Z and co.likeness[0] < LIKENESS and co.group[0] == UNRECOGNISED
    assert co.z[2] < COHERENCE_Z and co.likeness[2] < LIKENESS
    assert co.group[1] == LAST_FITTED and co.z[1] < COHERENCE_Z  # the odd group is alike: not the class's reading
    assert co.group[3] == LAST_FITTED and co.z[3] < COHERENCE_Z  # no unrecognised group: its last-fitted pictures
    assert co.match_class == 0
    cut = trigger_line(co.match[labels != 0])
    listed = np.flatnonzero((labels == 0) & (co.match >= cut))
    assert set(listed) == set(groups[0])
    again = trigger_coherence(ds, labels, fit, prob, called, 0.5, None, seed=0)
    assert np.array_equal(again.z, co.z, equal_nan=True) and np.array_equal(again.match, co.match, equal_nan=True)


def test_without_the_held_out_check_only_the_last_fitted_pictures_are_read():
    rng = np.random.default_rng(2)
    ds, labels, fit, prob, called, _ = _set(rng)
    co = trigger_coherence(ds, labels, fit, None, None, 0.5, None, seed=0)
    assert (co.group == LAST_FITTED).all() and (co.z < COHERENCE_Z).all()  # honest pictures, fitted last
    assert co.match_class in range(K)  # a direction is still read, from the most coherent honest group


def test_a_pattern_on_the_pictures_fitted_last_is_coherent_and_its_match_lists_them():
    """A faint blend the model does not take as a shortcut: its pictures are fitted last, as mislabelled
    ones are, and none is held out. Class 4's last-fitted quarter reads coherent against the class's
    other pictures, the direction comes from it, the match lists exactly the blended pictures, and the
    verdict says poisoned, names class 4 and says the pictures are fitted last."""
    rng = np.random.default_rng(4)
    ds, labels, fit, prob, called, _ = _set(rng)
    last = np.flatnonzero(labels == 4)[-PER // 4:]
    pattern = rng.uniform(0, 255, (3, SIZE, SIZE))
    images = ds.images.numpy().astype(np.float64)
    images[last] = 0.9 * images[last] + 0.1 * pattern
    ds = dataset_from_arrays(np.clip(images, 0, 255).astype(np.uint8), labels, [f"c{c}" for c in range(K)], SIZE)
    co = trigger_coherence(ds, labels, fit, None, None, 0.5, None, seed=0)  # no held-out check: last-fitted groups
    assert co.group[4] == LAST_FITTED and co.z[4] >= COHERENCE_Z and co.likeness[4] < LIKENESS
    assert co.match_class == 4 and (np.delete(co.z, 4) < COHERENCE_Z).all()
    cut = trigger_line(co.match[labels != 4])
    assert set(np.flatnonzero((labels == 4) & (co.match >= cut))) == set(last)
    ev = Evidence(labels, 1, fit, 0.4, False, 0.3, coherence_z=co.z, coherence_likeness=co.likeness,
                  coherence_group=co.group, trigger_match=co.match, trigger_class=co.match_class,
                  classes=[f"c{c}" for c in range(K)])
    v = attack_verdict(ev)
    assert v.verdict == "poisoned" and "coherence" in v.evidence and v.suspected == 4
    assert set(np.flatnonzero(v.suspicious)) == set(last)
    assert "fits last" in v.reason and GROUP_NAMES[LAST_FITTED] in v.inputs["coherence_group"]


def _evidence(coherence_z, likeness, target=1, trigger_class=3):
    """Ten classes of 200 with honest fit ranks; class 3 holds 40 pictures whose trigger match is high."""
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(10), 200)
    fit = rng.uniform(0, 1, len(labels))
    match = rng.normal(0, 0.02, len(labels))
    poison = np.flatnonzero(labels == 3)[:40]
    match[poison] = rng.uniform(0.3, 0.8, len(poison))
    z, like = np.full(10, np.nan), np.full(10, np.nan)
    z[3], like[3] = coherence_z, likeness
    ev = Evidence(labels, target, fit, 0.4, False, 0.3, coherence_z=z, coherence_likeness=like,
                  trigger_match=match, trigger_class=trigger_class, classes=[f"c{i}" for i in range(10)])
    return ev, poison


def test_a_coherent_group_in_another_class_than_the_vote_makes_the_verdict_poisoned_and_names_it():
    """The vote picked class 1; class 3's unrecognised pictures share a trigger's fine detail: poisoned,
    the list is class 3's pictures that match it, and the user is told to build the split around 3."""
    ev, poison = _evidence(60.0, 0.05)
    v = attack_verdict(ev)
    assert v.verdict == "poisoned" and v.evidence == ["coherence"]
    assert v.suspected == 3 and v.target_in_doubt and v.inputs["list_rule"] == "trigger"
    assert set(np.flatnonzero(v.suspicious)) == set(poison)
    assert "c3" in v.reason and "same pixels" in v.reason and "--target c3" in v.reason


@pytest.mark.parametrize("z, likeness", [(60.0, 0.5), (COHERENCE_Z - 1, 0.05), (np.nan, np.nan)])
def test_a_group_that_is_alike_or_not_coherent_enough_is_no_evidence(z, likeness):
    """One kind of picture (an odd group shares its fine detail too), or detail shared no further than
    honest groups share theirs: the verdict stays clean and lists nothing."""
    ev, _ = _evidence(z, likeness)
    v = attack_verdict(ev)
    assert v.verdict == "clean" and "coherence" not in v.evidence and not v.suspicious.any()
    assert v.inputs["trigger_class"] == -1
    if likeness < LIKENESS:  # a group read and found wanting: the reason says what was checked
        assert f"coherence z {z:.1f}, line {COHERENCE_Z:g}" in v.reason
