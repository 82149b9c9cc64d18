"""LGA (ABL's local gradient ascent) and the target vote of stage 0."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bsd_audit.method.losses import lga_loss
from bsd_audit.method.target import lga_vote, majority


def test_sign_flip_below_gamma():
    # ℓ = [0.2, 0.9], γ = 0.5: sign(ℓ - γ)·ℓ = [-0.2, 0.9], mean 0.35
    out = lga_loss(torch.tensor([0.2, 0.9]), gamma=0.5)
    assert out.item() == pytest.approx(0.35)


def test_all_above_gamma_is_plain_mean():
    assert lga_loss(torch.tensor([0.6, 1.0, 2.0]), gamma=0.5).item() == pytest.approx(3.6 / 3)


def test_gamma_moves_the_threshold():
    # with γ = 1.0 both samples are below it: mean(-0.2, -0.9) = -0.55
    assert lga_loss(torch.tensor([0.2, 0.9]), gamma=1.0).item() == pytest.approx(-0.55)


def test_default_gamma_is_0_5():
    assert lga_loss(torch.tensor([0.4, 0.6])).item() == pytest.approx((-0.4 + 0.6) / 2)


def test_gradient_is_ascent_below_gamma_descent_above():
    ell = torch.tensor([0.2, 0.9], requires_grad=True)
    lga_loss(ell, gamma=0.5).backward()
    # d/dℓ_i of mean(sign_i·ℓ_i) = sign_i / n
    assert ell.grad.tolist() == pytest.approx([-0.5, 0.5])
    # one SGD step on the objective: the fitted sample's loss rises, the other's falls
    with torch.no_grad():
        stepped = ell - 0.1 * ell.grad
    assert stepped[0].item() > 0.2
    assert stepped[1].item() < 0.9


def test_gradient_flows_through_to_model_parameters():
    # ℓ(w) = w² for one sample: below γ the gradient of the objective w.r.t. w is -2w (ascent)
    w = torch.tensor(0.5, requires_grad=True)  # ℓ = 0.25 < γ
    lga_loss((w * w)[None], gamma=0.5).backward()
    assert w.grad.item() == pytest.approx(-1.0)


def test_lga_vote_isolates_lowest_loss_share():
    ce = np.array([0.9, 0.1, 0.5, 0.05, 0.7, 0.3, 0.8, 0.6, 0.4, 0.95])
    labels = np.array([0, 2, 1, 2, 0, 1, 0, 1, 2, 0])
    isolated, votes = lga_vote(ce, labels, num_classes=4, share=0.3)  # k = 3
    assert isolated.tolist() == [3, 1, 5]  # losses 0.05, 0.1, 0.3
    assert votes.tolist() == [0, 1, 2, 0]  # labels 2, 2, 1; class 3 absent but counted
    assert votes.sum() == 3


def test_lga_vote_ties_broken_by_index():
    ce = np.array([0.5, 0.1, 0.1, 0.1, 0.9])
    labels = np.array([0, 1, 2, 0, 1])
    isolated, votes = lga_vote(ce, labels, num_classes=3, share=0.4)  # k = 2
    assert isolated.tolist() == [1, 2]
    assert votes.tolist() == [0, 1, 1]


def test_lga_vote_isolates_at_least_one_sample():
    ce = np.array([0.3, 0.2, 0.4])
    isolated, votes = lga_vote(ce, np.array([0, 1, 1]), num_classes=2, share=0.01)
    assert isolated.tolist() == [1]
    assert votes.tolist() == [0, 1]


def test_majority_picks_most_frequent():
    assert majority(np.array([3, 1, 3, 0, 3, 1]), num_classes=4) == 3


def test_majority_tie_goes_to_smallest_class():
    assert majority(np.array([2, 1, 2, 1, 0]), num_classes=3) == 1
    assert majority(np.array([4, 2]), num_classes=5) == 2
