"""The tool's own errors and the exit codes they map to (documented in the README and man pages)."""

from __future__ import annotations

# Exit codes: stable, a CI job may rely on them.
EXIT_OK = 0  # finished; no poison found above the user's threshold (or no threshold given)
EXIT_POISON = 1  # finished; poison found above the user's threshold
EXIT_BAD_INPUT = 2  # bad input or usage: the message names the file and the fix
EXIT_INTERNAL = 3  # internal failure (a bug or an environment fault): please report it
EXIT_TARGET_DISAGREE = 4  # --strict: the two target estimates disagree
EXIT_MODEL_GATE = 5  # evaluate: CA below --min-ca or ASR above --max-asr
EXIT_INCONCLUSIVE = 6  # --fail-on-verdict: the verdict is inconclusive


class AuditError(Exception):
    """Base of every error the tool reports without a traceback."""

    exit_code = EXIT_INTERNAL


class BadInputError(AuditError):
    """The data, an artifact or an argument is unusable. The message names the file and the fix."""

    exit_code = EXIT_BAD_INPUT


class UsageError(BadInputError):
    """An option or config value is invalid."""
