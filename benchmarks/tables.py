"""Shared by the benchmark scripts: one JSON line per result as it comes, a markdown table at the end."""

from __future__ import annotations


def markdown_table(rows: list[dict]) -> str:
    """Rows as a markdown table; columns in first-seen order, a missing value as '-', floats to 3 places."""
    cols = list(dict.fromkeys(k for r in rows for k in r))

    def cell(v) -> str:
        if v is None:
            return "-"
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines)
