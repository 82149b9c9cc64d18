"""--target and --target-from together: the user's --target wins over the artifact's vote, the
artifact's warm-up is still reused, and the summary and the terminal say so (never silently)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from bsd_audit.cli import app
from conftest import TINY_OVERRIDES

SETS = [a for k, v in {**TINY_OVERRIDES, "altruistic_warmup_epochs": 2}.items() for a in ("--set", f"{k}={v}")]
runner = CliRunner()


def test_a_conflicting_target_is_said_and_used(tiny_poisoned, tmp_path):
    data, _, _ = tiny_poisoned
    target = tmp_path / "t.h5"
    r = runner.invoke(app, ["detect-target", str(data), "--out", str(target), "--json", "-q", *SETS])
    voted = json.loads(r.stdout)["lga_target_name"]
    other = next(c for c in ("ant", "bee", "cat") if c != voted)
    r = runner.invoke(app, ["split", str(data), "--out", str(tmp_path / "s.h5"), "--json", "--init-only",
                            "--target", other, "--target-from", str(target), *SETS])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["target_name"] == other and s["source"] == "user" and s["lga_target_name"] == voted
    said = [w for w in s["warnings"] if "wins over" in w]
    assert said and voted in said[0] and f"--target {other}" in said[0]
    assert "warning: --target" in r.stderr


def test_an_agreeing_target_is_not_a_warning(tiny_poisoned, tmp_path):
    data, _, _ = tiny_poisoned
    target = tmp_path / "t.h5"
    r = runner.invoke(app, ["detect-target", str(data), "--out", str(target), "--json", "-q", *SETS])
    voted = json.loads(r.stdout)["lga_target_name"]
    r = runner.invoke(app, ["split", str(data), "--out", str(tmp_path / "s.h5"), "--json", "-q", "--init-only",
                            "--target", voted, "--target-from", str(target), *SETS])
    assert r.exit_code == 0 and not json.loads(r.stdout)["warnings"]
