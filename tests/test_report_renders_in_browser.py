"""A real browser opens the report from disk and paints it: headless Chromium takes a screenshot of
the page, which must have the window's size and show the thumbnail grid (many colours, not a blank
page). Skipped where no Chromium is installed."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from bsd_audit.cli import app
from report_helpers import copy_with, make_split_artifact

WIDTH, HEIGHT = 1280, 2000
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _browser() -> str | None:
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


@pytest.mark.skipif(_browser() is None, reason="no chromium binary on PATH (apt-get install chromium)")
def test_chromium_paints_the_report(tmp_path):
    artifact, data, _ = make_split_artifact(tmp_path)
    html = tmp_path / "report.html"
    r = CliRunner().invoke(app, ["report", str(artifact), "--data", str(data), "--out", str(html), "--top", "36"])
    assert r.exit_code == 0, r.output
    png, profile = tmp_path / "shot.png", tmp_path / "profile"
    profile.mkdir()
    cmd = [_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", f"--screenshot={png}", f"--window-size={WIDTH},{HEIGHT}",
           html.resolve().as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert png.is_file(), f"no screenshot (exit {done.returncode}):\n{done.stderr[-2000:]}"
    shot = np.asarray(Image.open(png).convert("RGB"))
    assert shot.shape == (HEIGHT, WIDTH, 3)
    # The grid sits below the charts; the tiny images are noisy colour fields enlarged 6x, so a painted
    # grid holds thousands of colours where a blank or unstyled page holds a handful.
    grid = shot[HEIGHT // 2:]
    colours = len(np.unique(grid.reshape(-1, 3), axis=0))
    assert colours > 3000, f"only {colours} distinct colours in the lower half: grid not painted?"
    assert (shot < 250).any(axis=2).mean() > 0.05  # some ink on the page at all


@pytest.mark.skipif(_browser() is None, reason="no chromium binary on PATH (apt-get install chromium)")
@pytest.mark.parametrize("verdict, headline", [
    ("poisoned", "Backdoor poisoning found"),
    ("inconclusive", "Inconclusive: the evidence neither clears this dataset nor shows an attack"),
    ("clean", "No backdoor attack found in this dataset."),
])
def test_each_verdict_has_its_own_headline_in_the_browser(tmp_path, verdict, headline):
    """The page a reviewer opens says the artifact's three-way verdict: ``inconclusive`` is never
    headlined as "no attack found". Read back from the DOM Chromium builds."""
    artifact, data, _ = make_split_artifact(tmp_path, with_verdict=True)

    def set_verdict(f):
        f["verdict"].attrs["verdict"] = verdict
        f["verdict"].attrs["attack_present"] = verdict == "poisoned"

    edited = copy_with(artifact, tmp_path / f"{verdict}.h5", set_verdict)
    html = tmp_path / f"{verdict}.html"
    r = CliRunner().invoke(app, ["report", str(edited), "--data", str(data), "--out", str(html), "--top", "4"])
    assert r.exit_code == 0, r.output
    profile = tmp_path / "profile"
    profile.mkdir()
    done = subprocess.run([_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           f"--user-data-dir={profile}", "--dump-dom", html.resolve().as_uri()],
                          capture_output=True, text=True, timeout=120)
    dom = done.stdout
    assert f'data-verdict="{verdict}"' in dom, done.stderr[-2000:]
    opening = dom[dom.index(f'data-verdict="{verdict}"'):]
    opening = opening[:opening.index("</div>")]
    assert f"<strong>{headline}" in opening
    if verdict != "clean":
        assert "No backdoor attack found" not in dom
