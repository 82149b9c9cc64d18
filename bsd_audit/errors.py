"""The tool's own errors and the exit codes they map to (documented in the README and man pages)."""

from __future__ import annotations

import math
from pathlib import Path

# Exit codes: stable, a CI job may rely on them.
EXIT_OK = 0  # finished; no poison found above the user's threshold (or no threshold given)
EXIT_POISON = 1  # finished; poison found above the user's threshold
EXIT_BAD_INPUT = 2  # bad input or usage: the message names the file and the fix
EXIT_INTERNAL = 3  # internal failure (a bug or an environment fault): please report it
EXIT_TARGET_IN_DOUBT = 4  # --strict: the verdict's evidence names another class than the target used
EXIT_MODEL_GATE = 5  # evaluate: CA below --min-ca or ASR above --max-asr
EXIT_INCONCLUSIVE = 6  # --fail-on-verdict: the verdict is inconclusive
EXIT_DIVERGED = 7  # training diverged: a NaN or infinite loss
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT): the run stopped; its checkpoint, if any, is kept


class AuditError(Exception):
    """Base of every error the tool reports without a traceback."""

    exit_code = EXIT_INTERNAL


class BadInputError(AuditError):
    """The data, an artifact or an argument is unusable. The message names the file and the fix."""

    exit_code = EXIT_BAD_INPUT


class UsageError(BadInputError):
    """An option or config value is invalid."""


class TrainingDivergedError(AuditError):
    """A training stage's loss became NaN or infinite. Raised at the end of the epoch it happened in,
    before that epoch's checkpoint is written, so the last checkpoint on disk is a good one."""

    exit_code = EXIT_DIVERGED

    def __init__(self, stage: str, epoch: int, epochs: int, loss: float, lr_field: str, lr: float, suggested_lr: float):
        super().__init__(stage, epoch)
        self.stage, self.epoch, self.epochs, self.loss = stage, epoch, epochs, loss
        self.lr_field, self.lr, self.suggested_lr = lr_field, lr, suggested_lr
        self.checkpoint: Path | None = None  # set by the command that keeps one
        self.checkpoint_epochs = ""  # how far the kept checkpoint got, in words

    def __str__(self) -> str:
        what = "NaN" if math.isnan(self.loss) else "infinite"
        msg = (f"training diverged: the {self.stage} loss became {what} in epoch {self.epoch + 1} of {self.epochs}. "
               f"Lower the learning rate (--set {self.lr_field}={self.suggested_lr:g}; it is {self.lr:g} now) "
               "and check the data (damaged or near-constant images).")
        if self.checkpoint is not None:
            msg += (f" The last good checkpoint, {self.checkpoint} ({self.checkpoint_epochs}), is kept: run the same "
                    "command with a lower learning rate to continue from it, or with --no-resume to start over.")
        else:
            msg += " No checkpoint was written before it: run the command again with the new setting."
        return msg
