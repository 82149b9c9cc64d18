"""Export formats: one small module per format, all behind ExportFormat (interface.py)."""

from __future__ import annotations

from ...errors import UsageError
from .csv_format import CsvFormat
from .interface import ExportFormat
from .json_format import JsonFormat

FORMATS: dict[str, ExportFormat] = {f.name: f for f in (CsvFormat(), JsonFormat())}


def get_format(name: str) -> ExportFormat:
    try:
        return FORMATS[name.lower()]
    except KeyError:
        raise UsageError(f"--format {name!r}: unknown export format. Choose one of: {', '.join(FORMATS)}.") from None


__all__ = ["FORMATS", "ExportFormat", "get_format"]
