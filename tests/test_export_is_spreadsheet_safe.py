"""A CSV export opened in a spreadsheet runs no formula: text cells that start with =, +, -, @ (a
class or file named "=1+2") get a leading apostrophe, as OWASP advises; scores stay numbers, so a
negative score is still a number a spreadsheet can sort."""

from __future__ import annotations

import csv
import io

from typer.testing import CliRunner

from bsd_audit.cli import app
from report_helpers import make_split_artifact


def test_formula_cells_are_neutralised_and_numbers_kept(tmp_path):
    artifact, _, _ = make_split_artifact(tmp_path, classes=("=1+2", "@bee", "cat"), target="cat")
    r = CliRunner().invoke(app, ["export", str(artifact)])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    labels = {row["label"] for row in rows}
    assert labels == {"'=1+2", "'@bee", "cat"}
    assert all(row["path"][0] not in "=+-@" for row in rows)
    assert any(row["path"].startswith("'=1+2/") for row in rows)
    negative = [row["indicator"] for row in rows if row["indicator"].startswith("-")]
    assert negative and all(float(v) < 0 for v in negative)  # numbers are not prefixed
