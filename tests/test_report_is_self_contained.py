"""`bsd-audit report` writes one HTML file that needs nothing else: inline CSS, inline SVG charts,
thumbnails as data: URIs, no script, no link to the network; names from the data are escaped."""

from __future__ import annotations

import base64
import io
import re

import pytest
from PIL import Image
from typer.testing import CliRunner

from bsd_audit.cli import app
from report_helpers import make_split_artifact

runner = CliRunner()
EVIL = '<script>alert("bee")'  # a class folder name: anything but "/" is allowed on Linux
TOP = 7


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    base = tmp_path_factory.mktemp("report")
    artifact, data, truth = make_split_artifact(base, classes=("ant", EVIL, "cat"))
    out = base / "report.html"
    r = runner.invoke(app, ["report", str(artifact), "--data", str(data), "--out", str(out), "--top", str(TOP)])
    assert r.exit_code == 0, r.output
    return out.read_text(encoding="utf-8")


def test_nothing_external(page):
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:|//|file:)""", page, re.I)
    assert "http://" not in page and "https://" not in page
    assert "<link" not in page.lower() and "@import" not in page and "url(" not in page
    assert "<script" not in page.lower()  # no script at all, and the evil class name is escaped
    srcs = re.findall(r'<img [^>]*src="([^"]*)"', page)
    assert len(srcs) == TOP and all(s.startswith("data:image/png;base64,") for s in srcs)
    thumb = Image.open(io.BytesIO(base64.b64decode(srcs[0].split(",", 1)[1])))
    assert thumb.size == (96, 96)  # 16 px images enlarged 6x


def test_class_name_is_escaped(page):
    assert "&lt;script&gt;alert(&quot;bee&quot;)" in page
    assert EVIL not in page


def test_has_verdict_charts_and_grid(page):
    assert page.index('class="verdict ') < page.index("<h2>")  # the verdict opens the page
    assert "most likely attack target is \u201ccat\u201d" in page
    assert page.count('class="chart"') == 3  # pool sizes, ALS histogram, I histogram
    assert "ALS: altruistic" in page and "I: indicator" in page
    assert page.count("clean pool (") == 2 and page.count("poison pool (") == 2  # legends with counts
    assert len(re.findall(r'<figure class="cell (poison|clean)"', page)) == TOP
    assert page.count("GT poisoned") + page.count("GT clean") == TOP
    assert "Ground truth (benchmark)" in page


def test_no_truth_no_badges(tmp_path):
    artifact, data, _ = make_split_artifact(tmp_path, with_truth=False)
    out = tmp_path / "r.html"
    r = runner.invoke(app, ["report", str(artifact), "--data", str(data), "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    page = out.read_text(encoding="utf-8")
    assert "GT poisoned" not in page and "GT clean" not in page and "Ground truth" not in page
    assert len(re.findall(r'<figure class="cell', page)) == len(list(data.rglob("*.png")))  # --top 64 > 36
