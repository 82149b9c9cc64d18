"""The CI gate maps every outcome it names to its documented exit code (report/gate.py), driven with
constructed results so that each branch runs, whatever a tiny dataset's verdict would be."""

from __future__ import annotations

import pytest

from bsd_audit.errors import (EXIT_INCONCLUSIVE, EXIT_MODEL_GATE, EXIT_OK, EXIT_POISON, EXIT_TARGET_IN_DOUBT)
from bsd_audit.report.gate import audit_gate, model_gate


def gate(verdict="clean", confidence=0.3, share=0.01, in_doubt=False, **options):
    return audit_gate(verdict, f"because {verdict}", confidence, share, in_doubt, **options)


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
    g = gate("inconclusive", confidence=0.9, in_doubt=True, on_verdict=True, min_confidence=0.5, strict=True)
    assert g.exit_code == EXIT_POISON and len(g.reasons) == 1


def test_strict_exits_4_when_the_evidence_names_another_class_and_says_so():
    g = gate("poisoned", in_doubt=True, strict=True)
    assert g.exit_code == EXIT_TARGET_IN_DOUBT and "--strict" in g.reasons[0]
    assert gate(in_doubt=False, strict=True).exit_code == EXIT_OK
    assert gate("poisoned", in_doubt=True).exit_code == EXIT_OK
    assert gate("poisoned", in_doubt=True, on_verdict=True, strict=True).exit_code == EXIT_POISON
    assert g.to_dict()["exit_code"] == EXIT_TARGET_IN_DOUBT


def test_model_gate_on_ca_and_asr():
    assert model_gate(90.0, 1.0, 85.0, 5.0).exit_code == EXIT_OK
    low = model_gate(80.0, 1.0, 85.0, None)
    assert low.exit_code == EXIT_MODEL_GATE and "CA 80.00 %" in low.failures[0]
    high = model_gate(90.0, 40.0, None, 5.0)
    assert high.exit_code == EXIT_MODEL_GATE and "ASR 40.00 %" in high.failures[0]
    assert model_gate(None, None, None, None).passed
