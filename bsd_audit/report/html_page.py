"""`bsd-audit report`: one self-contained HTML page for a human reviewer of a split.

Self-contained means: CSS in a <style> element, charts as inline SVG, thumbnails as base64 PNG data
URIs, no script and no external link, so the file can be mailed, archived or opened offline. Every
string that comes from the data (paths, class names) goes through html.escape.
"""

from __future__ import annotations

import datetime as _dt
from html import escape
from pathlib import Path

import numpy as np

from .. import __version__
from ..artifacts.split import SplitArtifact, read_split
from ..artifacts.outputs import check_output, starts_like
from ..artifacts.text import atomic_write_text
from ..data.sizes import SizeSurvey
from .export import check_top
from .images import check_data_root, data_uri, thumbnail_png
from .ranking import RankedTable, Row, rank_samples
from .tables import called_profile, coherence_fact
from .svg import Series, histogram_svg, pool_bars_svg
from .headline import headline_of

CLEAN_COLOR, POISON_COLOR = "#2f6fd0", "#e8590c"
THUMB_PX = 96

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;color:#1d1d1f;background:#fafafa;margin:0}
main{max-width:1200px;margin:0 auto;padding:20px 28px 40px}
h1{font-size:24px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 10px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#666;font-size:13px;word-break:break-all}
.verdict{background:#fff;border-left:6px solid #e8590c;padding:12px 16px;margin:16px 0;font-size:15px;line-height:1.5}
.verdict strong{font-size:17px}
.verdict.v-poisoned{border-left-color:#c92a2a} .verdict.v-inconclusive{border-left-color:#f59f00}
.verdict.v-clean{border-left-color:#2b8a3e}
.truth{background:#f3f0ff;border-left:6px solid #7048e8;padding:8px 16px;font-size:14px}
.row{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
table{border-collapse:collapse;font-size:13px;background:#fff}
th,td{border:1px solid #ddd;padding:3px 9px;text-align:left} td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.hl td{font-weight:700;background:#fff4e6}
.chart{background:#fff;border:1px solid #ddd}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(138px,1fr));gap:10px}
.cell{margin:0;background:#fff;border:1px solid #ddd;border-top:4px solid #2f6fd0;padding:6px;font-size:11px}
.cell.poison{border-top-color:#e8590c}
.cell img{display:block;margin:0 auto 4px;width:96px;height:96px;object-fit:contain;image-rendering:pixelated;
 image-rendering:crisp-edges;background:#eee}
.cell .path{word-break:break-all;color:#333} .cell .sc{color:#555;font-variant-numeric:tabular-nums}
.badge{display:inline-block;border-radius:3px;padding:0 4px;font-weight:700;color:#fff;font-size:10px}
.badge.gt-poison{background:#c92a2a} .badge.gt-clean{background:#2b8a3e} .badge.listed{background:#e67700}
.note{color:#555;font-size:13px;line-height:1.5;max-width:900px}
"""


_TITLE = "bsd-audit report"  # the page title: an earlier report is recognised by it


def _f(x: float, digits: int = 3) -> str:
    return "–" if not np.isfinite(x) else f"{x:.{digits}g}"


def _evidence_facts(data: SplitArtifact) -> list[tuple[str, str]]:
    """The verdict's two lines of evidence for the vote's class, the second estimate's and the held-out
    check's lowest class (each class's figures are in the verdict's inputs)."""
    x = (data.verdict or {}).get("inputs") or {}
    tails, zs = x.get("class_scores") or [], x.get("holdout_class_z") or []
    out = []
    for name in dict.fromkeys([data.target.get("lga_target_name"), data.target.get("second_likely_name")]):
        if name in data.classes:
            i = data.classes.index(name)
            tail = f"{tails[i]:.2f}x" if i < len(tails) else "–"
            z = f"{zs[i]:+.1f}" if i < len(zs) and zs[i] is not None else "–"
            out.append((f"evidence for {name}", f"tail {tail}, held-out z {z}"))
    if x.get("holdout_tested"):
        low = data.classes[x["holdout_class"]]
        out.append(("held-out check", f"lowest z {x['holdout_z']:+.1f} in {low} of {x['holdout_tested']} classes "
                                      f"(line {x['holdout_line']:.1f}){called_profile(x)}"))
    fact = coherence_fact(x, data.classes)
    if fact is not None:
        out.append(("fine-detail coherence", fact))
    return out


def _sizes_note(data: SplitArtifact) -> str:
    """The images' native sizes and the working size the audit saw them at; a warning when the shrink
    can erase a small trigger (data/sizes.py)."""
    raw = data.summary.get("image_sizes")
    if not isinstance(raw, dict):
        return ""
    try:
        s = SizeSurvey(**raw)
    except TypeError:
        return ""
    text = (f"Images: native short side {s.short_side_min:,}-{s.short_side_max:,} px (median "
            f"{s.short_side_median:,}, {s.non_square:.0%} not square); audited at {s.working_size} px, "
            f"a shrink of {s.shrink:g}x.")
    warn = f' <strong>Warning: {escape(s.warning)}.</strong>' if s.warning else ""
    return f'<p class="note sizes">{escape(text)}{warn}</p>'


def _vote_table(data: SplitArtifact) -> str:
    t = data.target
    votes = t["votes"]
    total = max(1, sum(votes))
    second = t.get("second_likely_name")
    rows = []
    for i in np.argsort(-np.asarray(votes), kind="stable"):
        if votes[i] == 0:
            continue
        name = data.classes[i]
        mark = " (LGA vote)" if name == t.get("lga_target_name") else ""
        mark += " (second-likely)" if name == second else ""
        hl = ' class="hl"' if i == int(t["target"]) else ""
        rows.append(f"<tr{hl}><td>{escape(name)}{escape(mark)}</td><td class=n>{votes[i]}</td>"
                    f"<td class=n>{votes[i] / total:.0%}</td></tr>")
    zero = sum(1 for v in votes if v == 0)
    foot = f'<tr><td colspan=3 class="note">{zero} other class(es): 0 votes</td></tr>' if zero else ""
    facts = [("target used", f"{t['target_name']} ({t.get('source', '?')})"),
             ("second-likely estimate", f"{second} ({'agrees' if t.get('agree') else 'another class'})"),
             *_evidence_facts(data),
             ("loss gap of the isolated samples", _f(float(t.get("loss_gap", float("nan"))))), ]
    fact_rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in facts)
    return (f"<div><table><caption>Votes of the {t.get('num_isolated', '?')} isolated (lowest-loss) samples</caption>"
            f"<tr><th>label</th><th>votes</th><th>share</th></tr>{''.join(rows)}{foot}</table>"
            f"<br><table>{fact_rows}</table></div>")


def _pool_chart(data: SplitArtifact) -> str:
    c = len(data.classes)
    clean = np.bincount(data.labels[data.clean], minlength=c).tolist()
    poison = np.bincount(data.labels[~data.clean], minlength=c).tolist()
    return pool_bars_svg(data.classes, clean, poison, int(data.target["target"]), (CLEAN_COLOR, POISON_COLOR))


def _histograms(data: SplitArtifact) -> str:
    out = []
    for key, title in (("als", "ALS: altruistic model's loss (high = clean)"),
                       ("indicator", "I: indicator, eq. 9 (high = clean)")):
        v = data.scores[key]
        if not np.isfinite(v).any():
            out.append(f'<p class="note">No {escape(key)} scores in this artifact (the run stopped before they were computed).</p>')
            continue
        out.append(histogram_svg([Series("clean pool", v[data.clean], CLEAN_COLOR),
                                  Series("poison pool", v[~data.clean], POISON_COLOR)], title))
    return '<div class="row">' + "".join(out) + "</div>"


def _cell(row: Row, uri: str) -> str:
    badge = ""
    if row.poisoned is not None:
        badge = (' <span class="badge gt-poison" title="ground truth">GT poisoned</span>' if row.poisoned
                 else ' <span class="badge gt-clean" title="ground truth">GT clean</span>')
    if row.suspicious:
        badge = ' <span class="badge listed" title="on the verdict\'s suspicious list">suspicious</span>' + badge
    oss = "" if not np.isfinite(row.oss) else f" · OSS {_f(row.oss)}"
    return (f'<figure class="cell {row.pool}"><img src="{uri}" width="{THUMB_PX}" height="{THUMB_PX}" '
            f'alt="{escape(row.path)}"><figcaption><b>#{row.rank}</b>{badge}'
            f'<div class="path">{escape(row.path)}</div>'
            f"<div>{escape(row.label)} · {row.pool} pool</div>"
            f'<div class="sc">I {_f(row.indicator)} · ALS {_f(row.als)}{oss}</div>'
            f'<div class="sc">suspicion {_f(row.suspicion)}</div></figcaption></figure>')


def render_report(data: SplitArtifact, table: RankedTable, thumbs: dict[int, str]) -> str:
    """The page. ``table`` holds the rows to show as thumbnails; ``thumbs`` maps sample index -> data URI."""
    n = len(data)
    sentences = headline_of(data)
    verdict = f"<strong>{escape(sentences[0])}</strong> " + " ".join(escape(s) for s in sentences[1:])
    kind = escape(str((data.verdict or {}).get("verdict", "none")))
    truth = ""
    if data.truth is not None:
        shown = sum(bool(r.poisoned) for r in table.rows)
        truth = (f'<p class="truth">Ground truth (benchmark): {int(data.truth.sum()):,} poisoned images; '
                 f"{int((data.truth & ~data.clean).sum()):,} in the poison pool, "
                 f"{int((data.truth & data.clean).sum()):,} left in the clean pool; "
                 f"{shown} of the {len(table.rows)} images shown below are poisoned.</p>")
    meta = (f"{escape(str(data.path))} · {n:,} images, {len(data.classes)} classes · data {escape(data.data_root)} · "
            f"split by bsd-audit {escape(str(data.attrs.get('tool_version', '?')))} on "
            f"{escape(str(data.attrs.get('created', '?')))} · report by bsd-audit {escape(__version__)} on "
            f"{_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')}")
    cells = "".join(_cell(r, thumbs[r.index]) for r in table.rows)
    sizes = _sizes_note(data)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_TITLE}: {escape(data.path.name)}</title><style>{CSS}</style></head>
<body><main>
<h1>Backdoor audit report</h1>
<div class="meta">{meta}</div>
{sizes}
<div class="verdict v-{kind}" data-verdict="{kind}">{verdict}</div>
{truth}
<h2>Target label and pools</h2>
<div class="row">{_vote_table(data)}{_pool_chart(data)}</div>
<h2>Score distributions</h2>
{_histograms(data)}
<p class="note">Clean pool in blue, poison pool in orange. Poisoned images sit at the low end of both
scores: the backdoor-prone altruistic model fits them first (low ALS), and the main model, which never
learned the trigger, finds them hard (low I).</p>
<h2>The {len(table.rows)} most suspicious images</h2>
<p class="note">Order: the verdict's suspicious list first, then the rest of the poison pool, each by
suspicion ({escape(table.suspicion_source)}), most suspicious first. Rank #k is the sample's place in
the full ranking (<code>bsd-audit export</code>
lists all {n:,}). Thumbnails are the original files enlarged without smoothing.</p>
<div class="grid">{cells}</div>
</main></body></html>
"""


def write_report(artifact: Path, data_root: Path, out: Path, top: int = 64, force: bool = False) -> dict:
    """Check the data, render the page with the ``top`` most suspicious images, write it atomically.
    ``out`` replaces an earlier report, anything else only with ``force``, never an input."""
    check_top(top)
    out = Path(out)
    check_output(out, "bsd-audit report", starts_like(lambda head: _TITLE in head), [artifact], [data_root], force)
    data = read_split(artifact)
    check_data_root(data, data_root)
    table = rank_samples(data).filtered(top=top)
    thumbs = {r.index: data_uri(thumbnail_png(Path(data_root) / r.path, THUMB_PX)) for r in table.rows}
    atomic_write_text(out, render_report(data, table, thumbs))
    summary = {"command": "report", "report": str(out), "artifact": str(artifact), "data_root": str(data_root),
               "target_name": data.target_name, "num_samples": len(data), "shown": len(table.rows),
               "suspicion_source": table.suspicion_source}
    if data.truth is not None:
        summary["poisoned_shown"] = sum(bool(r.poisoned) for r in table.rows)
    return summary
