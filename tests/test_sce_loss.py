"""sce_loss is α·CE + β·RCE with RCE = -A·(1 - p_y), A = -4 (Wang et al. 2019; docs/method.md)."""

from __future__ import annotations

import inspect
import math

import pytest
import torch

from bsd_audit.config import Config
from bsd_audit.method.losses import sce_loss

# Three samples, three classes. Expected values worked out by hand:
#   sample 0: logits (2, 0, 0), y = 0: p_y = e^2 / (e^2 + 2)        = 0.7869860
#   sample 1: logits (0, 1, 0), y = 2: p_y = 1 / (2 + e)             = 0.2119416
#   sample 2: logits (1, -1, 3), y = 1: p_y = e^-1 / (e + e^-1 + e^3) = 0.0158762
# CE = -ln p_y, RCE = 4·(1 - p_y).
LOGITS = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, -1.0, 3.0]])
Y = torch.tensor([0, 2, 1])
P_Y = [0.7869860421615985, 0.21194155761708547, 0.015876239976466765]
CE = [0.2395447662218845, 1.551444713932051, 4.142931628499899]
RCE = [0.852055831353606, 3.1522337695316582, 3.9364950400941328]
SCE_DEFAULT = [0.8760103079757944, 3.3073782409248635, 4.3507882029441225]  # 0.1·CE + 1·RCE


def test_hand_numbers_are_self_consistent():
    # the constants above, re-derived with plain math (no torch), so a typo in them cannot hide
    assert P_Y[0] == pytest.approx(math.exp(2) / (math.exp(2) + 2))
    assert P_Y[1] == pytest.approx(1 / (2 + math.e))
    assert P_Y[2] == pytest.approx(math.exp(-1) / (math.e + math.exp(-1) + math.exp(3)))
    for p, ce, rce, sce in zip(P_Y, CE, RCE, SCE_DEFAULT):
        assert ce == pytest.approx(-math.log(p))
        assert rce == pytest.approx(4 * (1 - p))
        assert sce == pytest.approx(0.1 * ce + rce)


def test_default_sce_matches_hand_computed_values():
    out = sce_loss(LOGITS, Y)
    assert out.shape == (3,)
    assert out.tolist() == pytest.approx(SCE_DEFAULT, rel=1e-5)


def test_ce_and_rce_parts_separately():
    assert sce_loss(LOGITS, Y, alpha=1.0, beta=0.0).tolist() == pytest.approx(CE, rel=1e-5)
    assert sce_loss(LOGITS, Y, alpha=0.0, beta=1.0).tolist() == pytest.approx(RCE, rel=1e-5)
    # any other weights: a linear combination of the two parts
    expected = [0.5 * c + 2.0 * r for c, r in zip(CE, RCE)]
    assert sce_loss(LOGITS, Y, alpha=0.5, beta=2.0).tolist() == pytest.approx(expected, rel=1e-5)


def test_log_clip_scales_rce():
    # A = -2 halves RCE: -A·(1 - p_y) = 2·(1 - p_y)
    expected = [2 * (1 - p) for p in P_Y]
    assert sce_loss(LOGITS, Y, alpha=0.0, beta=1.0, log_clip=-2.0).tolist() == pytest.approx(expected, rel=1e-5)


def test_rce_is_bounded_by_minus_A_while_ce_is_not():
    # a confidently wrong sample: p_y ~ e^-100
    logits = torch.tensor([[-50.0, 50.0], [50.0, -50.0]])
    y = torch.tensor([0, 0])
    rce = sce_loss(logits, y, alpha=0.0, beta=1.0)
    ce = sce_loss(logits, y, alpha=1.0, beta=0.0)
    assert rce[0].item() == pytest.approx(4.0, abs=1e-6)  # the bound -A
    assert rce[1].item() == pytest.approx(0.0, abs=1e-6)  # perfectly fitted
    assert ce[0].item() == pytest.approx(100.0, rel=1e-4)  # CE grows without bound
    # over random logits RCE never leaves [0, 4]
    g = torch.Generator().manual_seed(0)
    many = torch.randn(200, 5, generator=g) * 30
    labels = torch.randint(0, 5, (200,), generator=g)
    r = sce_loss(many, labels, alpha=0.0, beta=1.0)
    assert float(r.min()) >= 0.0 and float(r.max()) <= 4.0 + 1e-6


def test_defaults_alpha_0_1_beta_1_A_minus_4():
    params = inspect.signature(sce_loss).parameters
    assert params["alpha"].default == 0.1
    assert params["beta"].default == 1.0
    assert params["log_clip"].default == -4.0
    cfg = Config()
    assert (cfg.sce_alpha, cfg.sce_beta, cfg.sce_log_clip) == (0.1, 1.0, -4.0)


def test_half_precision_logits_are_computed_in_float32():
    out = sce_loss(LOGITS.to(torch.bfloat16), Y)
    assert out.dtype == torch.float32
    assert out.tolist() == pytest.approx(SCE_DEFAULT, rel=1e-2)
