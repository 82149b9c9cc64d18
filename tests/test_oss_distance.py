"""Open Set Splitting (eqs. 4-6): class means over D_nt, distance of D_t samples to them, top-β split."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bsd_audit.method.oss import class_means, oss_distance, oss_split

# Non-target classes 0 and 1, target class 2, in 2-D:
#   class 0: (0,0), (2,0) -> μ0 = (1,0)
#   class 1: (0,4), (0,2) -> μ1 = (0,3)
NT_FEATS = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [0.0, 2.0]])
NT_LABELS = torch.tensor([0, 0, 1, 1])
MU = torch.tensor([[1.0, 0.0], [0.0, 3.0], [float("nan"), float("nan")]])
# Target samples and their raw L2 distances to (μ0, μ1):
#   (4,0): (3, 5)   (1,3): (3, 1)
FT = torch.tensor([[4.0, 0.0], [1.0, 3.0]])


def test_class_means_hand_example():
    mu = class_means(NT_FEATS, NT_LABELS, num_classes=3)
    assert mu[:2].tolist() == [[1.0, 0.0], [0.0, 3.0]]
    assert torch.isnan(mu[2]).all()  # absent class -> NaN row


def test_class_means_unequal_counts():
    f = torch.tensor([[1.0, 1.0], [3.0, 1.0], [5.0, 4.0], [10.0, -2.0]])
    mu = class_means(f, torch.tensor([1, 1, 1, 0]), num_classes=2)
    assert mu.tolist() == [[10.0, -2.0], [3.0, 2.0]]


@pytest.mark.parametrize("reduce, expected", [("min", [3.0, 1.0]), ("mean", [4.0, 2.0]), ("max", [5.0, 3.0])])
def test_raw_l2_distance(reduce, expected):
    d = oss_distance(FT, MU, target=2, reduce=reduce, normalize=False)
    assert d.tolist() == pytest.approx(expected, abs=1e-5)


def test_normalized_distance_is_cosine_geometry():
    # normalised: μ0 -> (1,0), μ1 -> (0,1); (4,0) -> (1,0); (1,3) -> (1,3)/√10.
    # ‖a - b‖ = √(2 - 2·cos): (4,0) is at (0, √2); (1,3) at (√(2 - 2/√10), √(2 - 6/√10)).
    r2 = math.sqrt(2)
    da = (0.0, r2)
    db = (1.16942056932753, 0.3203644860139345)
    assert db[0] == pytest.approx(math.sqrt(2 - 2 / math.sqrt(10)))
    assert db[1] == pytest.approx(math.sqrt(2 - 6 / math.sqrt(10)))
    assert oss_distance(FT, MU, 2, "min", normalize=True).tolist() == pytest.approx([0.0, db[1]], abs=1e-5)
    assert oss_distance(FT, MU, 2, "mean", normalize=True).tolist() == pytest.approx(
        [r2 / 2, (db[0] + db[1]) / 2], abs=1e-5)
    assert oss_distance(FT, MU, 2, "max", normalize=True).tolist() == pytest.approx([r2, db[0]], abs=1e-5)
    # the default is normalize=True, reduce=min
    assert oss_distance(FT, MU, 2).tolist() == pytest.approx([0.0, db[1]], abs=1e-5)


def test_normalized_distance_ignores_feature_scale():
    d1 = oss_distance(FT, MU, 2, normalize=True)
    d2 = oss_distance(FT * 7.5, MU * 0.1, 2, normalize=True)
    assert d1.tolist() == pytest.approx(d2.tolist(), abs=1e-5)
    # raw L2 does not
    assert oss_distance(FT * 2, MU, 2, normalize=False).tolist() != pytest.approx([3.0, 1.0], abs=1e-3)


def test_target_class_mean_is_excluded():
    # put the target's own mean right on top of the samples: it must not count
    mu = torch.tensor([[1.0, 0.0], [0.0, 3.0], [4.0, 0.0]])
    assert oss_distance(FT, mu, target=2, reduce="min", normalize=False).tolist() == pytest.approx([3.0, 1.0])
    # target in the middle row: rows 0 and 2 are used
    mu_mid = torch.tensor([[1.0, 0.0], [4.0, 0.0], [0.0, 3.0]])
    assert oss_distance(FT, mu_mid, target=1, reduce="max", normalize=False).tolist() == pytest.approx([5.0, 3.0])


def test_unknown_reduce_raises():
    with pytest.raises(ValueError, match="median"):
        oss_distance(FT, MU, 2, reduce="median")


# oss_split on a set interleaving D_nt and D_t (target 2). D_t samples and their min raw L2 distance:
#   idx 1: (4,0) -> 3    idx 3: (1,3) -> 1    idx 4: (1,0) -> 0
#   idx 6: (6,0) -> 5    idx 8: (1,2) -> √2 (to μ1)
SPLIT_FEATS = torch.tensor([
    [0.0, 0.0],  # 0: class 0
    [4.0, 0.0],  # 1: target
    [0.0, 4.0],  # 2: class 1
    [1.0, 3.0],  # 3: target
    [1.0, 0.0],  # 4: target
    [2.0, 0.0],  # 5: class 0
    [6.0, 0.0],  # 6: target
    [0.0, 2.0],  # 7: class 1
    [1.0, 2.0],  # 8: target
])
SPLIT_LABELS = torch.tensor([0, 2, 1, 2, 2, 0, 2, 1, 2])


def test_oss_split_scores_and_top_beta_share():
    scores, clean = oss_split(SPLIT_FEATS, SPLIT_LABELS, target=2, num_classes=3, beta=0.4,
                              reduce="min", normalize=False)
    is_t = SPLIT_LABELS.numpy() == 2
    assert np.isnan(scores[~is_t]).all()  # NaN outside D_t
    assert scores[is_t].tolist() == pytest.approx([3.0, 1.0, 0.0, 5.0, math.sqrt(2)], abs=1e-5)
    # D_nt all clean; of the 5 target samples, round(0.4·5) = 2 farthest (idx 6, 1) are clean
    assert clean.dtype == bool
    assert np.flatnonzero(clean).tolist() == [0, 1, 2, 5, 6, 7]


def test_oss_split_means_come_from_non_target_only():
    # moving the target samples far away changes their scores but not the means (scores of the
    # unchanged samples stay put)
    f = SPLIT_FEATS.clone()
    f[6] = torch.tensor([100.0, 0.0])
    scores, clean = oss_split(f, SPLIT_LABELS, 2, 3, beta=0.4, reduce="min", normalize=False)
    assert scores[[1, 3, 4, 8]].tolist() == pytest.approx([3.0, 1.0, 0.0, math.sqrt(2)], abs=1e-5)
    assert scores[6] == pytest.approx(99.0)


def test_oss_split_beta_share_sizes():
    for beta, n_clean_t in ((0.2, 1), (0.6, 3), (1.0, 5)):
        _, clean = oss_split(SPLIT_FEATS, SPLIT_LABELS, 2, 3, beta=beta, reduce="min", normalize=False)
        assert clean[SPLIT_LABELS.numpy() == 2].sum() == n_clean_t, beta
        assert clean[SPLIT_LABELS.numpy() != 2].all()
    _, clean = oss_split(SPLIT_FEATS, SPLIT_LABELS, 2, 3, beta=0.6, reduce="min", normalize=False)
    assert np.flatnonzero(clean & (SPLIT_LABELS.numpy() == 2)).tolist() == [1, 6, 8]  # 5, 3, √2


def test_oss_split_ties_keep_sample_order():
    # two target samples at the same distance (both 3 from μ0): the earlier one wins
    f = torch.tensor([[0.0, 0.0], [2.0, 0.0], [4.0, 0.0], [-2.0, 0.0], [1.0, 0.5]])
    labels = torch.tensor([0, 0, 1, 1, 1])
    # class 0 mean (1,0); target 1 samples at distance 3, 3, 0.5
    scores, clean = oss_split(f, labels, target=1, num_classes=2, beta=0.34, reduce="min", normalize=False)
    assert scores[2:].tolist() == pytest.approx([3.0, 3.0, 0.5])
    assert clean.tolist() == [True, True, True, False, False]


def test_oss_split_reduce_mean_changes_ranking():
    # reduce=mean, distances to (μ0, μ1): idx 1 (3, 5) -> 4; idx 3 (3, 1) -> 2; idx 4 (0, √10) -> 1.581;
    # idx 6 (5, √45) -> 5.854; idx 8 (2, √2) -> 1.707. With beta=0.6 the top 3 are idx 6, 1, 3, where
    # reduce=min kept idx 8 instead of idx 3.
    scores, clean = oss_split(SPLIT_FEATS, SPLIT_LABELS, 2, 3, beta=0.6, reduce="mean", normalize=False)
    assert scores[4] == pytest.approx(math.sqrt(10) / 2, abs=1e-5)
    assert scores[8] == pytest.approx((2 + math.sqrt(2)) / 2, abs=1e-5)
    assert scores[6] == pytest.approx((5 + math.sqrt(45)) / 2, abs=1e-5)
    assert np.flatnonzero(clean & (SPLIT_LABELS.numpy() == 2)).tolist() == [1, 3, 6]
