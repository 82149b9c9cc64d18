"""Reports out: what a reviewer reads from a split artifact.

  ranking.py    the reviewer's order and the suspicion score (the one place that defines both)
  format/       `export`: one small module per output format (csv, json) behind ExportFormat
  export.py     `export`: read, rank, filter, render, write
  verdict.py    the report's plain-language opening
  svg.py        inline SVG charts (histograms, pool sizes)
  images.py     data-root check (fingerprint) and thumbnails
  html_page.py  `report`: the self-contained HTML page
"""

from .export import export
from .html_page import write_report
from .ranking import rank_samples, suspicion_scores

__all__ = ["export", "rank_samples", "suspicion_scores", "write_report"]
