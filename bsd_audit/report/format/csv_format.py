"""CSV: a header row, then one row per sample, most suspicious first.

Columns: rank, index, path, label, pool, suspicious (on the verdict's list), oss, als, indicator,
suspicion, and poisoned (true/false) when the artifact holds ground truth. A score the sample does
not have (OSS outside the target class) is an empty cell.
"""

from __future__ import annotations

import csv
import io

from ..ranking import RankedTable
from .interface import ExportFormat, finite_or_none


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        v = finite_or_none(value)
        return "" if v is None else repr(v)
    return str(value)


class CsvFormat(ExportFormat):
    name = "csv"
    suffix = ".csv"

    def render(self, table: RankedTable) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        cols = table.columns
        w.writerow(cols)
        for row in table.rows:
            w.writerow([_cell(getattr(row, c)) for c in cols])
        return buf.getvalue()
