"""Reports out: what a person or a CI job reads of a result.

  gate.py       the CI gate: thresholds crossed and the exit code that follows
  tables.py     the terminal's tables (rich) of the commands' JSON summaries
  ranking.py    the reviewer's order and the suspicion score (the one place that defines both)
  format/       `export`: one small module per output format (csv, json) behind ExportFormat
  export.py     `export`: read, rank, filter, render, write
  headline.py   the report's plain-language opening
  svg.py        inline SVG charts (histograms, pool sizes)
  images.py     data-root check (fingerprint) and thumbnails
  html_page.py  `report`: the self-contained HTML page
"""

from .export import export
from .html_page import write_report
from .ranking import rank_samples, suspicion_scores

__all__ = ["export", "rank_samples", "suspicion_scores", "write_report"]
