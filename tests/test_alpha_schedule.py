"""α_T schedule (eq. 11): T' = (T - T1 - 10)/(T2 - T1 - 10)·T2, α_T = β + (α - β)(1 - cos(πT'/T2))/2."""

from __future__ import annotations

import math

import pytest

from bsd_audit.config import Config
from bsd_audit.method.pools import alpha_schedule

PAPER = dict(T1=20, T2=90, alpha=0.6, beta=0.2, init_fixed_epochs=10)


def a(T, **kw):
    return alpha_schedule(T, **{**PAPER, **kw})


def test_paper_defaults_in_config():
    cfg = Config()
    assert (cfg.T1, cfg.init_fixed_epochs, cfg.T2, cfg.alpha, cfg.beta) == (20, 10, 90, 0.6, 0.2)


def test_starts_at_beta_at_completion_stage():
    assert a(30) == pytest.approx(0.2)


def test_beta_before_completion_stage():
    for T in (0, 1, 10, 19, 20, 25, 29):
        assert a(T) == pytest.approx(0.2), T


def test_reaches_alpha_at_T2_and_stays():
    for T in (90, 91, 100, 119, 120, 500):
        assert a(T) == pytest.approx(0.6), T


def test_hand_computed_points():
    # T = 60: T' = 30/60·90 = 45, cos(π/2) = 0 -> 0.2 + 0.4·1/2 = 0.4
    assert a(60) == pytest.approx(0.4)
    # T = 40: T' = 10/60·90 = 15, cos(π/6) = √3/2 -> 0.2 + 0.4·(1 - 0.8660254)/2 = 0.2267949
    assert a(40) == pytest.approx(0.22679492, abs=1e-7)
    # T = 45: T' = 22.5, cos(π/4) = √2/2 -> 0.2 + 0.2·(1 - 0.7071068) = 0.2585786
    assert a(45) == pytest.approx(0.25857864, abs=1e-7)
    # T = 75: T' = 67.5, cos(3π/4) = -√2/2 -> 0.2 + 0.2·1.7071068 = 0.5414214
    assert a(75) == pytest.approx(0.54142136, abs=1e-7)


def test_monotone_non_decreasing_and_within_bounds():
    values = [a(T) for T in range(0, 131)]
    assert all(b >= v - 1e-12 for v, b in zip(values, values[1:]))
    assert min(values) == pytest.approx(0.2) and max(values) == pytest.approx(0.6)
    # strictly rising inside the completion stage
    inner = [a(T) for T in range(30, 91)]
    assert all(b > v for v, b in zip(inner, inner[1:]))


def test_other_schedule_lengths():
    # cpu preset proportions: T1=10, fixed 2, T2=18. T=14: T' = 2/6·18 = 6, cos(π/3) = 1/2
    # -> 0.2 + 0.4·(1/2)/2 = 0.3
    kw = dict(T1=10, T2=18, init_fixed_epochs=2)
    assert a(12, **kw) == pytest.approx(0.2)
    assert a(14, **kw) == pytest.approx(0.3)
    assert a(18, **kw) == pytest.approx(0.6)
    # a different α, β pair: midpoint is their mean
    assert a(60, alpha=0.8, beta=0.1) == pytest.approx(0.45)


def test_matches_equation_11_verbatim():
    T1, T2, al, be = 20, 90, 0.6, 0.2
    for T in range(31, 90):
        tp = (T - T1 - 10) / (T2 - T1 - 10) * T2
        expected = be + (al - be) * (1 - math.cos(math.pi * tp / T2)) / 2
        assert a(T) == pytest.approx(expected, abs=1e-12), T
