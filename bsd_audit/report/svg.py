"""Inline SVG charts for the HTML report: score histograms and pool sizes per class.

Plain strings, no plotting library: the report must open anywhere, offline, with no script. Every
text that comes from the data (class names) is escaped here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

import numpy as np

FONT = 'font-family="system-ui, sans-serif" font-size="11"'


@dataclass
class Series:
    label: str
    values: np.ndarray
    color: str


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering [lo, hi]."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _num(x: float) -> str:
    return f"{x:.3g}" if x != 0 else "0"


def histogram_svg(series: list[Series], title: str, bins: int = 40, width: int = 560, height: int = 230) -> str:
    """Overlaid histograms of several series on shared bins (translucent bars, one colour each, legend
    with counts). NaN values are left out; a series with none left is drawn as empty."""
    finite = [s.values[np.isfinite(s.values)] for s in series]
    pooled = np.concatenate(finite) if finite else np.array([])
    left, right, top, bottom = 46, 12, 26, 34
    pw, ph = width - left - right, height - top - bottom
    parts = [f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" {FONT}>',
             f'<text x="{left}" y="15" font-size="13" font-weight="600">{escape(title)}</text>']
    if pooled.size == 0:
        parts.append(f'<text x="{left}" y="{top + ph / 2:.0f}">no values</text></svg>')
        return "".join(parts)
    lo, hi = float(pooled.min()), float(pooled.max())
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    counts = [np.histogram(v, bins=edges)[0] for v in finite]
    cmax = max(1, max(int(c.max()) for c in counts))

    def x_of(v: float) -> float:
        return left + (v - lo) / (hi - lo) * pw

    def y_of(c: float) -> float:
        return top + ph - c / cmax * ph

    for t in _ticks(0, cmax, 4):  # horizontal grid and count axis
        y = y_of(t)
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e3e3"/>'
                     f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" fill="#555">{int(t)}</text>')
    bw = pw / bins
    for s, c in zip(series, counts):
        for i, n in enumerate(c):
            if n:
                y = y_of(n)
                parts.append(f'<rect x="{left + i * bw:.1f}" y="{y:.1f}" width="{max(bw - 0.5, 0.5):.1f}" '
                             f'height="{top + ph - y:.1f}" fill="{s.color}" fill-opacity="0.6"/>')
    parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{top + ph}" y2="{top + ph}" stroke="#333"/>')
    for t in _ticks(lo, hi, 6):
        x = x_of(t)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top + ph}" y2="{top + ph + 4}" stroke="#333"/>'
                     f'<text x="{x:.1f}" y="{top + ph + 16}" text-anchor="middle" fill="#333">{_num(t)}</text>')
    ly = top + 4
    for s, v in zip(series, finite):  # legend, top right
        parts.append(f'<rect x="{left + pw - 150}" y="{ly}" width="12" height="12" fill="{s.color}" fill-opacity="0.6"/>'
                     f'<text x="{left + pw - 134}" y="{ly + 10}">{escape(s.label)} ({v.size:,})</text>')
        ly += 17
    parts.append("</svg>")
    return "".join(parts)


def pool_bars_svg(classes: list[str], clean: list[int], poison: list[int], target: int | None,
                  colors: tuple[str, str], width: int = 560) -> str:
    """One horizontal bar per class: its clean-pool part, then its poison-pool part, with the counts."""
    row, left, right, top = 20, 130, 150, 30
    height = top + row * len(classes) + 8
    pw = width - left - right
    total_max = max(1, max(c + p for c, p in zip(clean, poison)))
    parts = [f'<svg class="chart" role="img" aria-label="pool sizes per class" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" {FONT}>',
             f'<rect x="{left}" y="6" width="12" height="12" fill="{colors[0]}"/>'
             f'<text x="{left + 16}" y="16">clean pool</text>'
             f'<rect x="{left + 100}" y="6" width="12" height="12" fill="{colors[1]}"/>'
             f'<text x="{left + 116}" y="16">poison pool</text>']
    for i, (name, c, p) in enumerate(zip(classes, clean, poison)):
        y = top + i * row
        label = escape(name if len(name) <= 20 else name[:19] + "…")
        weight = ' font-weight="700"' if i == target else ""
        suffix = "  · target" if i == target else ""
        wc, wp = c / total_max * pw, p / total_max * pw
        parts.append(f'<text x="{left - 6}" y="{y + 13}" text-anchor="end"{weight}>{label}</text>'
                     f'<rect x="{left}" y="{y + 2}" width="{wc:.1f}" height="{row - 5}" fill="{colors[0]}"/>'
                     f'<rect x="{left + wc:.1f}" y="{y + 2}" width="{wp:.1f}" height="{row - 5}" fill="{colors[1]}"/>'
                     f'<text x="{left + wc + wp + 6:.1f}" y="{y + 13}" fill="#333"{weight}>{c:,} / {p:,}{suffix}</text>')
    parts.append("</svg>")
    return "".join(parts)
