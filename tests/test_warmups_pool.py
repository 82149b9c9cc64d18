"""Several altruistic warm-ups pool their evidence (altruistic_warmups, method/target.py): the first
is the single warm-up of altruistic_warmups=1, each later one starts from new weights, every epoch
of every warm-up is counted, and the pooled fit ranks are the average of the warm-ups' own."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bsd_audit.api import prepare
from bsd_audit.config import AUTO_WARMUPS, AUTO_WARMUPS_MAX_IMAGES, lga_epochs, resolve_config, warmups_for
from bsd_audit.training.progress import Progress
from bsd_audit.method.target import detect_target, window_epochs
from conftest import TINY_OVERRIDES


def _warm_up(data, runs: int):
    """detect_target on the tiny set with ``runs`` warm-ups, and the warm-up state after every epoch."""
    cfg = resolve_config("cpu", {**TINY_OVERRIDES, "altruistic_warmups": runs})
    rt, ds, norm, cfg, _ = prepare(data, cfg, Progress())  # seeds torch's global generator, as a run does
    states = []

    def keep(state):
        states.append({"epoch": state.epoch, "model": {k: v.clone() for k, v in state.model.items()},
                       "sums": {k: v.clone() for k, v in state.sums.items()}})
    est = detect_target(ds, norm, cfg, rt, rt.generator(cfg.seed), maybe_checkpoint=keep)
    return cfg, est, states


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from conftest import make_tiny_poisoned
    data = tmp_path_factory.mktemp("warmups") / "data"
    make_tiny_poisoned(data)
    return {k: _warm_up(data, k) for k in (1, 2)}


def test_the_first_warm_up_is_the_single_one(runs):
    _, one, _ = runs[1]
    cfg, _, states = runs[2]
    E = cfg.altruistic_warmup_epochs
    end_of_first = states[E - 1]
    assert end_of_first["epoch"] == E
    assert all(torch.equal(end_of_first["model"][k], v) for k, v in one.altruistic_state.items())


def test_every_epoch_of_every_warm_up_counts(runs):
    cfg, two, states = runs[2]
    E = cfg.altruistic_warmup_epochs
    assert lga_epochs(cfg, 120) == 2 * E
    assert [s["epoch"] for s in states] == list(range(1, 2 * E + 1))
    assert len(two.history) == len(two.second_likely_per_epoch) == 2 * E
    # the second warm-up starts from new weights: its first objective is a fresh model's, not the
    # settled one the first warm-up ended on (LGA holds that near lga_gamma)
    assert two.history[E] > two.history[E - 1] + 0.1
    first_end, second_start = states[E - 1]["model"], states[E]["model"]
    assert not all(torch.equal(first_end[k], second_start[k]) for k in first_end)


def test_pooled_fit_rank_is_the_average_of_the_warm_ups(runs):
    cfg, two, states = runs[2]
    _, one, _ = runs[1]
    E = cfg.altruistic_warmup_epochs
    window = window_epochs(cfg)  # per warm-up
    first = states[E - 1]["sums"]["rank"].numpy() / window
    second = (states[2 * E - 1]["sums"]["rank"] - states[E - 1]["sums"]["rank"]).numpy() / window
    assert np.allclose(first, one.fit_rank)  # the first warm-up's own ranks: the single run's
    assert np.allclose(two.fit_rank, (first + second) / 2)
    assert not np.allclose(first, second)  # two runs, not one counted twice
    # the vote reads the pooled losses
    lowest = np.argsort(two.ce, kind="stable")[:len(two.isolated)]
    assert np.array_equal(np.sort(lowest), np.sort(two.isolated))


def test_warmups_cannot_be_negative():
    from bsd_audit.errors import UsageError
    with pytest.raises(UsageError, match="altruistic_warmups"):
        resolve_config("cpu", {"altruistic_warmups": "-1"})


def test_auto_pools_warm_ups_on_small_data_only():
    for preset in ("cpu", "fast"):
        cfg = resolve_config(preset)
        assert cfg.altruistic_warmups == 0  # auto
        assert warmups_for(cfg, 2_500) == warmups_for(cfg, AUTO_WARMUPS_MAX_IMAGES) == AUTO_WARMUPS == 3
        assert warmups_for(cfg, AUTO_WARMUPS_MAX_IMAGES + 1) == warmups_for(cfg, 50_000) == 1
        assert lga_epochs(cfg, 2_500) == 3 * cfg.altruistic_warmup_epochs
    assert warmups_for(resolve_config("paper"), 2_500) == 1  # the paper's single warm-up
    assert warmups_for(resolve_config("cpu", {"altruistic_warmups": "5"}), 50_000) == 5  # a set count wins
