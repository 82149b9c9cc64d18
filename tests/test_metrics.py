"""CA, ASR, DER, the confusion matrix and AUROC, pinned on hand-checked cases (method.md "Metrics")."""

from __future__ import annotations

import numpy as np
import pytest

from bsd_audit.metrics import (accuracy, attack_success_rate, auroc, confusion_matrix, defence_effectiveness_ratio,
                               per_class_accuracy, split_quality)


def test_accuracy_counts_matches():
    assert accuracy(np.array([0, 1, 2, 2]), np.array([0, 1, 1, 2])) == 0.75


def test_asr_ignores_samples_whose_true_label_is_the_target():
    true = np.array([0, 1, 2, 2, 0])
    to = np.full(5, 2)  # single target: class 2
    pred = np.array([2, 1, 2, 2, 2])
    asr, n = attack_success_rate(pred, true, to)
    assert n == 3  # the two class-2 samples prove nothing
    assert asr == pytest.approx(2 / 3)


def test_asr_all_to_all_uses_each_samples_own_backdoor_label():
    true = np.array([0, 1, 2])
    to = (true + 1) % 3
    asr, n = attack_success_rate(np.array([1, 1, 0]), true, to)
    assert n == 3 and asr == pytest.approx(2 / 3)


def test_der_matches_the_papers_badnets_row():
    # no defence CA 94.9 / ASR 100.0; BSD CA 95.1 / ASR 0.9 -> DER 99.55 (the paper prints 99.6)
    assert defence_effectiveness_ratio(0.949, 1.0, 0.951, 0.009) == pytest.approx(0.9955)


def test_der_counts_an_accuracy_drop_against_the_defence():
    # ASR 90 -> 10 (+0.8), CA 90 -> 80 (-0.1): (0.8 - 0.1 + 1) / 2
    assert defence_effectiveness_ratio(0.9, 0.9, 0.8, 0.1) == pytest.approx(0.85)
    # a defence that raises the ASR gets no credit for it below 0.5
    assert defence_effectiveness_ratio(0.9, 0.1, 0.9, 0.3) == pytest.approx(0.5)


def test_confusion_rows_are_true_classes_and_per_class_accuracy_is_recall():
    conf = confusion_matrix(np.array([0, 1, 1, 2]), np.array([0, 0, 1, 1]), 3)
    assert conf.tolist() == [[1, 1, 0], [0, 1, 1], [0, 0, 0]]
    acc = per_class_accuracy(conf)
    assert acc[0] == 0.5 and acc[1] == 0.5 and np.isnan(acc[2])


def test_auroc_hand_case_with_ties_and_nan():
    scores = np.array([0.9, 0.5, 0.5, 0.1, np.nan])
    clean = np.array([True, True, False, False, True])
    # pairs (clean, poison): (0.9,0.5) 1, (0.9,0.1) 1, (0.5,0.5) 0.5, (0.5,0.1) 1 -> 3.5 / 4
    assert auroc(scores, clean) == pytest.approx(0.875)
    assert auroc(np.array([1.0, 2.0]), np.array([True, True])) is None


def test_split_quality_counts_poison_left_in_the_clean_pool():
    clean = np.array([True, True, False, False, True])
    truth = np.array([False, True, True, True, False])
    q = split_quality(clean, truth, {"als": np.array([5.0, 1.0, 0.0, 2.0, 4.0])})
    assert q["num_poisoned"] == 3 and q["poison_in_clean"] == 1
    assert q["poison_recall"] == pytest.approx(2 / 3, abs=1e-4)
    assert q["poison_pool_precision"] == 1.0
    assert q["auroc_als"] == pytest.approx(1.0)
