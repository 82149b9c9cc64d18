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


def _estimate(labels, fit_rank, match, trigger_class, coherence_z):
    from bsd_audit.method.target import TargetEstimate

    n, c = len(labels), int(labels.max()) + 1
    z = np.zeros(c)
    z[trigger_class] = coherence_z
    return TargetEstimate(target=trigger_class, votes=np.zeros(c), confidence=0.5, isolated=np.arange(0),
                          isolated_loss_mean=0.0, loss_median=0.0, second_likely_per_epoch=np.array([0]),
                          second_likely_target=0, ce=np.zeros(n), sce=np.zeros(n), fit_rank=fit_rank,
                          coherence_z=z, coherence_likeness=np.zeros(c), trigger_match=match, trigger_class=trigger_class)


def _trigger_case():
    """Class 1 of 20 holds 10 poisoned samples (idx 0-9) that the warm-up fitted last, which the fit
    rank would keep; their match is high, except two (a shifted patch) that match negatively. The
    other classes' pictures match around 0.01."""
    rng = np.random.default_rng(0)
    labels = np.array([1] * 20 + [0] * 40)
    match = np.concatenate([[0.30, 0.25, 0.35, 0.28, 0.40, 0.22, 0.31, 0.27, -0.20, -0.15],
                            0.01 + 0.002 * rng.standard_normal(10), 0.01 + 0.002 * rng.standard_normal(40)])
    fit_rank = np.concatenate([np.linspace(0.9, 0.99, 10), np.linspace(0.1, 0.5, 10), rng.random(40)])
    return labels, fit_rank, match


def test_the_trigger_match_ranks_the_target_class_when_coherence_read_its_trigger():
    from bsd_audit.config import Config
    from bsd_audit.method.bsd import _kept_target

    labels, fit_rank, match = _trigger_case()
    cfg = Config(target_keep="trigger", target_keep_share=0.4)  # 8 of the 20
    keep = _kept_target(_estimate(labels, fit_rank, match, trigger_class=1, coherence_z=50.0), labels, 1, cfg)
    assert keep.sum() == 8 and not keep[:10].any()  # every kept one is honest, the negative matches too are left out
    assert set(np.flatnonzero(keep)) <= set(range(10, 20))


def test_the_fit_rank_ranks_the_target_class_when_no_trigger_was_read():
    from bsd_audit.config import Config
    from bsd_audit.method.bsd import _kept_target

    labels, fit_rank, match = _trigger_case()
    cfg = Config(target_keep="trigger", target_keep_share=0.4)
    # under the coherence line: the match says nothing, and the fit rank keeps the last-fitted ones
    keep = _kept_target(_estimate(labels, fit_rank, match, trigger_class=1, coherence_z=2.0), labels, 1, cfg)
    assert np.flatnonzero(keep).tolist() == list(range(2, 10))
    # a trigger read in another class does not rank this one either
    keep = _kept_target(_estimate(labels, fit_rank, match, trigger_class=0, coherence_z=50.0), labels, 1, cfg)
    assert np.flatnonzero(keep).tolist() == list(range(2, 10))


def test_on_stored_photo_splits_the_trigger_ranking_keeps_no_poison_where_the_fit_rank_kept_dozens():
    """The stored clothing splits at 128 px (benchmarks/evidence): the fit rank's 20 % of the shoes held
    33 (BadNets) and 75 (Blended) poisoned photos; the trigger's match keeps none."""
    from conftest import BENCHMARKS, load_benchmark

    table = load_benchmark("target_keep_table")
    stored = BENCHMARKS / "evidence" / "full-resolution" / "128"
    for name, fit_rank_at_20 in (("m-clothing-badnets6pct-5", 33), ("m-clothing-blended10-5", 75)):
        counts = table.kept_poison(table.load(stored / f"{name}-s0-split.json.gz"))
        assert counts["fit rank"][1] == fit_rank_at_20
        assert counts["closest to the other classes' match"][:2] == [0, 0]
