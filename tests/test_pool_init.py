"""Pool initialisation (eq. 3), ALS (eq. 7) and the indicator I (eq. 9)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from bsd_audit.config import Config
from bsd_audit.method.als import als_split
from bsd_audit.method.pools import indicator, init_pools

ALS = np.array([True, True, False, False])
OSS = np.array([True, False, True, False])


def test_intersection_is_the_default():
    assert inspect.signature(init_pools).parameters["combine"].default == "intersection"
    assert Config().init_combine == "intersection"
    assert init_pools(ALS, OSS).tolist() == [True, False, False, False]


def test_poison_pool_is_union_of_poison_sides():
    clean = init_pools(ALS, OSS, "intersection")
    assert (~clean).tolist() == ((~ALS) | (~OSS)).tolist() == [False, True, True, True]


def test_union_option():
    assert init_pools(ALS, OSS, "union").tolist() == [True, True, True, False]


def test_als_keeps_highest_loss_share():
    sce = np.array([0.1, 0.9, 0.5, 0.3, 0.7])
    assert np.flatnonzero(als_split(sce, 0.4)).tolist() == [1, 4]  # round(0.4·5) = 2 highest
    assert np.flatnonzero(als_split(sce, 0.6)).tolist() == [1, 2, 4]
    assert als_split(sce, 0.0).sum() == 0
    assert als_split(sce, 1.0).all()


def test_als_ties_broken_by_index():
    sce = np.array([1.0, 1.0, 1.0, 0.0])
    assert np.flatnonzero(als_split(sce, 0.5)).tolist() == [0, 1]


def test_indicator_is_altruistic_minus_main():
    out = indicator(np.array([1.0, 0.5, 2.0]), np.array([0.2, 0.9, 2.0]))
    assert out.tolist() == pytest.approx([0.8, -0.4, 0.0])
