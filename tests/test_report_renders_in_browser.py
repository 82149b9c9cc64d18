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
from report_helpers import make_split_artifact

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
