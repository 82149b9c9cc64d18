"""The CI gate maps every outcome it names to its documented exit code (report/gate.py), driven with
constructed results so that each branch runs, whatever a tiny dataset's verdict would be."""

from __future__ import annotations

import pytest

from bsd_audit.errors import (EXIT_INCONCLUSIVE, EXIT_MODEL_GATE, EXIT_OK, EXIT_POISON, EXIT_TARGET_DISAGREE)
from bsd_audit.report.gate import audit_gate, model_gate


def gate(verdict="clean", confidence=0.3, share=0.01, agree=True, **options):
    return audit_gate(verdict, f"because {verdict}", confidence, share, agree, **options)


@pytest.mark.parametrize("verdict, code", [("poisoned", EXIT_POISON), ("inconclusive", EXIT_INCONCLUSIVE),
                                           ("clean", EXIT_OK)])
def test_fail_on_verdict_gives_each_verdict_its_code(verdict, code):
    g = gate(verdict, on_verdict=True)
    assert g.exit_code == code
    assert (g.reasons == []) == (code == EXIT_OK)
    if g.reasons:
        assert g.reasons[0].startswith(f"verdict {verdict}: because {verdict}")


@pytest.mark.parametrize("verdict", ["poisoned", "inconclusive", "clean"])
def test_without_fail_on_verdict_the_verdict_alone_passes(verdict):
    assert gate(verdict).exit_code == EXIT_OK


def test_vote_share_and_flagged_share_thresholds():
    assert gate(confidence=0.6, min_confidence=0.5).exit_code == EXIT_POISON
    assert gate(confidence=0.4, min_confidence=0.5).exit_code == EXIT_OK
    assert gate(share=0.05, min_flagged=0.05).exit_code == EXIT_POISON
    assert gate(share=0.049, min_flagged=0.05).exit_code == EXIT_OK


def test_poison_outranks_inconclusive_and_strict():
    g = gate("inconclusive", confidence=0.9, agree=False, on_verdict=True, min_confidence=0.5, strict=True)
    assert g.exit_code == EXIT_POISON and len(g.reasons) == 1


def test_strict_exits_4_on_disagreement_and_says_so():
    g = gate(agree=False, strict=True)
    assert g.exit_code == EXIT_TARGET_DISAGREE and "--strict" in g.reasons[0]
    assert gate(agree=True, strict=True).exit_code == EXIT_OK
    assert gate(agree=False).exit_code == EXIT_OK
    assert g.to_dict()["exit_code"] == EXIT_TARGET_DISAGREE


def test_model_gate_on_ca_and_asr():
    assert model_gate(90.0, 1.0, 85.0, 5.0).exit_code == EXIT_OK
    low = model_gate(80.0, 1.0, 85.0, None)
    assert low.exit_code == EXIT_MODEL_GATE and "CA 80.00 %" in low.failures[0]
    high = model_gate(90.0, 40.0, None, 5.0)
    assert high.exit_code == EXIT_MODEL_GATE and "ASR 40.00 %" in high.failures[0]
    assert model_gate(None, None, None, None).passed
