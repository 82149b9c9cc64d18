"""What every export format provides: a name, a file suffix, and a ranked table rendered as text."""

from __future__ import annotations

import abc
import math

from ..ranking import RankedTable


class ExportFormat(abc.ABC):
    """One output format of `bsd-audit export`. Formats only lay out the table they are given:
    which rows, in which order, with which scores, is decided by ranking.py."""

    name: str  # the value of --format
    suffix: str  # the usual file suffix

    @abc.abstractmethod
    def render(self, table: RankedTable) -> str:
        """The whole table as text, ending with a newline."""

    @abc.abstractmethod
    def recognises(self, head: str) -> bool:
        """Whether text starting with ``head`` is an earlier export in this format (it may be replaced)."""


def finite_or_none(x: float) -> float | None:
    """A score for output: NaN (no score for this sample) or an infinity becomes None (JSON has
    neither); float32 noise is trimmed to 7 significant digits, which keeps order (rounding never
    swaps two values)."""
    return float(f"{x:.7g}") if math.isfinite(x) else None
