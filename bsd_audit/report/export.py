"""`bsd-audit export`: the ranked samples of a split artifact as CSV or JSON."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from ..artifacts.split import SplitArtifact, read_split
from ..artifacts.outputs import check_output, starts_like
from ..artifacts.text import atomic_write_text
from .format import get_format
from .ranking import RankedTable, rank_samples


@dataclass
class Export:
    text: str
    table: RankedTable  # the rows written (after --class and --top)


def check_classes(data: SplitArtifact, classes: list[str] | None) -> None:
    unknown = [c for c in classes or [] if c not in data.classes]
    if unknown:
        raise UsageError(f"--class {unknown[0]!r}: no such class in {data.path}. "
                         f"Its classes: {', '.join(data.classes)}.")


def check_top(top: int | None) -> None:
    if top is not None and top < 1:
        raise UsageError(f"--top {top}: must be at least 1.")


def export(artifact: Path, fmt: str = "csv", top: int | None = None, classes: list[str] | None = None,
           out: Path | None = None, force: bool = False) -> Export:
    """Rank the artifact's samples, keep the rows of ``classes`` (all when empty) and the first ``top``,
    render them in ``fmt``; write the text to ``out`` (atomically) when given. ``out`` replaces an
    earlier export in the same format, anything else only with ``force``, never the artifact itself."""
    formatter = get_format(fmt)  # refuse a bad option before reading anything
    check_top(top)
    if out is not None:
        check_output(out, f"{formatter.name.upper()} export", starts_like(formatter.recognises), [artifact], (), force)
    data = read_split(artifact)
    check_classes(data, classes)
    table = rank_samples(data).filtered(classes, top)
    text = formatter.render(table)
    if out is not None:
        atomic_write_text(out, text)
    return Export(text, table)
