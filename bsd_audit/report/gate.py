"""The CI gate: which of the user's thresholds a result crossed, and the exit code that follows.

The one place that maps outcomes to exit codes (errors.py lists them); the CLI prints the reasons and
exits with ``exit_code``, and the JSON summary carries both, so a log and a status always agree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..errors import EXIT_INCONCLUSIVE, EXIT_MODEL_GATE, EXIT_OK, EXIT_POISON, EXIT_TARGET_IN_DOUBT


@dataclass
class AuditGate:
    """The gate of detect-target and split."""

    exit_code: int
    reasons: list[str]
    fail_on_verdict: bool
    fail_on_confidence: float | None
    fail_on_flagged: float | None
    strict: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def audit_gate(verdict: str, reason: str, confidence: float, suspicious_share: float, target_in_doubt: bool,
               on_verdict: bool = False, min_confidence: float | None = None, min_flagged: float | None = None,
               strict: bool = False, votes: tuple[int, int] | None = None, flagged: tuple[int, int] | None = None
               ) -> AuditGate:
    """``on_verdict``: exit 1 on ``poisoned``, 6 on ``inconclusive``; ``min_confidence``: exit 1 when the
    LGA vote share reaches it; ``min_flagged``: exit 1 when the suspicious list holds that share of
    the data; ``strict``: exit 4 when the verdict's evidence names another class than the target the run
    used (``target_in_doubt``: the vote was likely wrong) and nothing above fired.
    ``votes`` (the winner's votes, isolated samples) and ``flagged`` (listed, samples) put the counts
    beside the shares in the reasons: one isolated sample of one is a share of 1.0."""
    reasons, code = [], EXIT_OK
    if on_verdict and verdict == "poisoned":
        reasons.append(f"verdict poisoned: {reason}")
        code = EXIT_POISON
    if min_confidence is not None and confidence >= min_confidence:
        counted = f" ({votes[0]} of {votes[1]} isolated samples)" if votes else ""
        reasons.append(f"target vote share {confidence:.2f}{counted} >= --fail-on-confidence {min_confidence:g}")
        code = EXIT_POISON
    if min_flagged is not None and suspicious_share >= min_flagged:
        counted = f" ({flagged[0]} of {flagged[1]} samples)" if flagged else ""
        reasons.append(f"suspicious share {suspicious_share:.4f}{counted} >= --fail-on-flagged {min_flagged:g}")
        code = EXIT_POISON
    if code == EXIT_OK and on_verdict and verdict == "inconclusive":
        reasons.append(f"verdict inconclusive: {reason}")
        code = EXIT_INCONCLUSIVE
    if code == EXIT_OK and strict and target_in_doubt:
        reasons.append("--strict: the verdict's evidence names another class than the target this run used")
        code = EXIT_TARGET_IN_DOUBT
    return AuditGate(code, reasons, on_verdict, min_confidence, min_flagged, strict)


@dataclass
class ModelGate:
    """evaluate's thresholds: ``passed`` is False when CA fell below ``min_ca`` or ASR rose above ``max_asr``."""

    min_ca: float | None
    max_asr: float | None
    passed: bool
    failures: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.passed else EXIT_MODEL_GATE

    def to_dict(self) -> dict:
        return asdict(self)


def model_gate(ca: float | None, asr: float | None, min_ca: float | None, max_asr: float | None) -> ModelGate:
    """CA and ASR in percent, as evaluate reports them."""
    failures = []
    if min_ca is not None and ca is not None and ca < min_ca:
        failures.append(f"CA {ca:.2f} % is below --min-ca {min_ca:g} %")
    if max_asr is not None and asr is not None and asr > max_asr:
        failures.append(f"ASR {asr:.2f} % is above --max-asr {max_asr:g} %")
    return ModelGate(min_ca, max_asr, not failures, failures)
