"""What a CI job reads is what the docs promise: the README's exit-code table lists exactly the codes
the tool can exit with, the JSON summary's field table (docs/ci.md) lists exactly the fields split
prints, the summary carries its schema, a structured device and one resume shape across commands,
and the gate's JSON states the exit code the process returns (--strict included)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from bsd_audit import errors
from bsd_audit.cli import app
from conftest import TINY_OVERRIDES

REPO = Path(__file__).resolve().parents[1]
SETS = [a for k, v in {**TINY_OVERRIDES, "altruistic_warmup_epochs": 2}.items() for a in ("--set", f"{k}={v}")]
runner = CliRunner()


def table_first_column(text: str, header: str) -> list[str]:
    """First cells of the markdown table whose header row starts with ``| header |``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {header} |"))
    cells = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells.append(line.split("|")[1].strip())
    return cells


def test_the_readme_lists_every_exit_code_and_no_other():
    codes = {v for k, v in vars(errors).items() if k.startswith("EXIT_")}
    listed = {int(c) for c in table_first_column((REPO / "README.md").read_text(), "code")}
    assert listed == codes


def test_the_json_field_table_is_what_split_prints(tiny_poisoned, tmp_path):
    data, manifest, _ = tiny_poisoned
    r = runner.invoke(app, ["split", str(data), "--out", str(tmp_path / "s.h5"), "--json", "-q", "--init-only",
                            "--truth", str(manifest), *SETS])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    documented = {name for cell in table_first_column((REPO / "docs" / "ci.md").read_text(), "field")
                  for name in re.findall(r"`([a-z_0-9.]+)`", cell)}
    assert documented == set(s)
    assert s["schema"] == 1
    assert set(s["device"]) == {"type", "name", "index", "threads", "ranks", "precision", "precision_reason"} and s["device"]["type"] == "cpu"


def test_every_training_command_reports_a_resume_the_same_way(tiny_split, tmp_path):
    r = runner.invoke(app, ["train-clean", str(tiny_split["data"]), "--baseline", "--out", str(tmp_path / "b.h5"),
                            "--json", "-q", *SETS, "--set", "purify_epochs=1"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["resumed_from"] is None and "resumed_from_epoch" not in s and s["schema"] == 1


def test_strict_exit_code_is_in_the_json_with_its_reason(tiny_poisoned, tmp_path):
    data, _, _ = tiny_poisoned
    r = runner.invoke(app, ["detect-target", str(data), "--out", str(tmp_path / "t.h5"), "--json", "--strict", *SETS])
    s = json.loads(r.stdout)
    assert r.exit_code == s["gate"]["exit_code"]
    if s["verdict"]["target_in_doubt"]:
        assert r.exit_code == errors.EXIT_TARGET_IN_DOUBT and "--strict" in s["gate"]["reasons"][0]
    else:
        assert r.exit_code == errors.EXIT_OK and s["gate"]["reasons"] == []
