"""JSON: one object, schema 1 (stable: fields are only ever added, never renamed or removed).

    {
      "schema": 1,
      "kind": "bsd-audit export",
      "artifact": "split.h5",                     # the split artifact the rows come from
      "target": {"index": 2, "name": "bird", "source": "lga", "lga_vote_share": 0.84,
                 "estimates_agree": true, "suspected": "bird", "target_in_doubt": false},
      "num_samples": 2500,                        # samples in the split (rows may be fewer: --top, --class)
      "num_rows": 125,
      "has_truth": true,                          # rows carry "poisoned"
      "suspicion_source": "fallback: ...",        # where the suspicion score came from
      "score_directions": {"oss": "high = clean", ..., "suspicion": "high = suspicious"},
      "columns": ["rank", "index", "path", ...],
      "rows": [{"rank": 1, "index": 17, "path": "bird/000123.png", "label": "bird", "pool": "poison",
                "oss": 0.21, "als": 0.004, "indicator": -5.1, "suspicion": 5.1, "poisoned": true}, ...]
    }

A score the sample does not have (OSS outside the target class) is null.
"""

from __future__ import annotations

import json

from ..ranking import RankedTable
from .interface import ExportFormat, finite_or_none

SCHEMA = 1
DIRECTIONS = {"oss": "high = clean", "als": "high = clean", "indicator": "high = clean",
              "suspicion": "high = suspicious"}


class JsonFormat(ExportFormat):
    name = "json"
    suffix = ".json"

    def recognises(self, head: str) -> bool:
        return head.lstrip().startswith("{") and '"kind": "bsd-audit export"' in head

    def render(self, table: RankedTable) -> str:
        cols = table.columns
        rows = []
        for row in table.rows:
            d = {c: getattr(row, c) for c in cols}
            for c in DIRECTIONS:
                d[c] = finite_or_none(d[c])
            rows.append(d)
        doc = {"schema": SCHEMA, "kind": "bsd-audit export", "artifact": table.artifact, "target": table.target,
               "num_samples": table.num_samples, "num_rows": len(rows), "has_truth": table.has_truth,
               "suspicion_source": table.suspicion_source, "score_directions": DIRECTIONS, "columns": cols,
               "rows": rows}
        # the header indented, then one row per line: readable, and diffs and greps stay line-based
        head = json.dumps({k: v for k, v in doc.items() if k != "rows"}, indent=1, allow_nan=False)
        body = ",\n".join("  " + json.dumps(r, allow_nan=False) for r in rows)
        return head[:-2] + ',\n "rows": [\n' + body + "\n ]\n}\n"
