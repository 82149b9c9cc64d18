"""CSV: a header row, then one row per sample, most suspicious first.

Columns: rank, index, path, label, pool, suspicious (on the verdict's list), oss, als, indicator,
suspicion, and poisoned (true/false) when the artifact holds ground truth. A score the sample does
not have (OSS outside the target class) is an empty cell. A text cell that a spreadsheet would run
as a formula (it starts with =, +, -, @, a tab or a carriage return: a class or file named "=1+2")
gets a leading apostrophe, as OWASP's advice on CSV injection says; numbers are written as numbers.
"""

from __future__ import annotations

import csv
import io
import numbers

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
    if isinstance(value, numbers.Integral):
        return str(value)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class CsvFormat(ExportFormat):
    name = "csv"
    suffix = ".csv"

    def recognises(self, head: str) -> bool:
        return head.startswith("rank,index,path,")

    def render(self, table: RankedTable) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        cols = table.columns
        w.writerow(cols)
        for row in table.rows:
            w.writerow([_cell(getattr(row, c)) for c in cols])
        return buf.getvalue()
