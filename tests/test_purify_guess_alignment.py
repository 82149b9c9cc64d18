"""train-clean aligns MixMatch's guessed labels to the unlabelled pool's own class shares
(config purify_align, docs/decisions/0035-purify-guess-alignment.md), the target class left out."""

from __future__ import annotations

import numpy as np
import torch

import bsd_audit.method.purify as purify
from bsd_audit import api
from bsd_audit.artifacts.split import read_split
from bsd_audit.config import resolve_config
from bsd_audit.method.mixmatch import GuessAlignment
from bsd_audit.method.purify import unlabelled_prior
from conftest import TINY_OVERRIDES


def test_guesses_biased_to_a_large_class_are_moved_to_the_prior():
    # the model calls most of the unlabelled images class 0; the pool's labels say the classes are even
    p = torch.tensor([[0.8, 0.1, 0.1], [0.7, 0.2, 0.1], [0.9, 0.05, 0.05], [0.6, 0.1, 0.3]])
    prior = torch.full((3,), 1 / 3)
    align = GuessAlignment(prior, p.mean(dim=0))
    q = align(p)
    assert torch.allclose(q.sum(dim=1), torch.ones(4))
    assert q.mean(dim=0)[0] < 0.45 < p.mean(dim=0)[0]  # class 0 no longer takes three quarters
    assert (q.argmax(dim=1) != 0).sum() >= 2  # and no longer wins every guess
    # the order inside a class is kept: the image most like class 0 stays the one most like it
    assert q[:, 0].argmax() == p[:, 0].argmax()


def test_guesses_that_already_match_the_prior_are_left_alone():
    p = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.7, 0.2]])
    marginal = torch.tensor([0.3, 0.5, 0.2])
    align = GuessAlignment(marginal.clone(), marginal)
    assert torch.allclose(align(p), p, atol=1e-6)


def test_the_running_marginal_follows_the_guesses():
    align = GuessAlignment(torch.full((2,), 0.5), torch.tensor([0.5, 0.5]))
    for _ in range(100):
        align(torch.tensor([[0.9, 0.1]]))
    assert torch.allclose(align.marginal, torch.tensor([0.9, 0.1]), atol=0.01)


def test_the_prior_is_the_unlabelled_pools_labels_without_the_suspicious_list():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    clean = np.array([1, 1, 0, 0, 0, 1, 0, 0, 0], dtype=bool)  # unlabelled: one 0, two 1s, three 2s
    listed = np.array([0, 0, 0, 0, 0, 0, 0, 1, 1], dtype=bool)  # two of the 2s carry the attacker's label
    prior = unlabelled_prior(labels, clean, listed, 4)
    # counts 1, 2, 1, 0 plus one each: class 3 has no image in the pool and is still not ruled out
    assert np.allclose(prior, np.array([2, 3, 2, 1]) / 8)
    assert np.allclose(unlabelled_prior(labels, clean, None, 3), np.array([2, 3, 4]) / 9)


def test_no_prior_when_every_unlabelled_image_is_listed():
    labels = np.array([0, 1, 1])
    clean = np.array([1, 0, 0], dtype=bool)
    assert unlabelled_prior(labels, clean, ~clean, 2) is None


def test_the_target_class_is_left_out_of_the_alignment():
    # the pool's labels claim many images of class 0, the target (missed poison carries its label);
    # the model guesses class 0 rarely. Aligned with every class, guesses move towards class 0; with
    # the target left out, each guess keeps its class-0 share and the other classes are still aligned.
    p = torch.tensor([[0.1, 0.6, 0.3], [0.05, 0.15, 0.8], [0.3, 0.5, 0.2], [0.02, 0.9, 0.08]])
    prior = torch.tensor([0.4, 0.2, 0.4])
    free = GuessAlignment(prior, p.mean(dim=0))(p)
    held = GuessAlignment(prior, p.mean(dim=0), target=0)
    assert (free[:, 0] > p[:, 0] + 0.05).all()
    for _ in range(50):  # step after step: the target's share neither rises nor is worn down
        q = held(p)
        assert torch.allclose(q[:, 0], p[:, 0])
    assert torch.allclose(q.sum(dim=1), torch.ones(4))
    assert q[:, 2].mean() > p[:, 2].mean() + 0.05  # class 2 is under-guessed against the prior: raised


def test_train_clean_holds_the_splits_target(tiny_split, tmp_path, monkeypatch):
    held = []
    real = purify.GuessAlignment

    def spy(prior, marginal, target=None):
        held.append(target)
        return real(prior, marginal, target)

    monkeypatch.setattr(purify, "GuessAlignment", spy)
    cfg = resolve_config("cpu", {**TINY_OVERRIDES, "purify_epochs": 1})
    api.train_clean(tiny_split["data"], tmp_path / "p.h5", cfg, tiny_split["split"])
    assert held == [read_split(tiny_split["split"]).target_index]
