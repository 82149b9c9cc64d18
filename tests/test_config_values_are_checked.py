"""A value the tool cannot run with is refused where the config is built, as a usage error (exit 2)
that names the field and the value, never as an internal error mid-run; gate thresholds outside
0..1, which could never fire, are refused too."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bsd_audit.cli import app
from bsd_audit.config import resolve_config
from bsd_audit.errors import EXIT_BAD_INPUT, UsageError

runner = CliRunner()


@pytest.mark.parametrize("field, value", [("seed", "-1"), ("altruistic_batch_size", "0"), ("threads", "-1"),
                                          ("altruistic_lr", "-0.1"), ("eval_batch_size", "0"), ("T1", "0"),
                                          ("isolation_share", "1.5"), ("image_size", "4"), ("mixmatch_K", "0"),
                                          ("image_size", "100000"), ("device", "mps"), ("device", "cuda:x")])
def test_out_of_range_values_are_refused_by_name(field, value):
    with pytest.raises(UsageError, match=f"{field} '{value}'"):
        resolve_config("cpu", {field: value})


def test_the_command_line_exits_2_before_reading_data(tmp_path):
    r = runner.invoke(app, ["split", str(tmp_path / "no-such-data"), "--seed", "-1", "--preset", "cpu"])
    assert r.exit_code == EXIT_BAD_INPUT, r.output
    assert "seed" in r.stderr and "greater than or equal to 0" in r.stderr and "Traceback" not in r.output


@pytest.mark.parametrize("option", ["--fail-on-confidence", "--fail-on-flagged"])
@pytest.mark.parametrize("value", ["2", "-0.5"])
def test_gate_thresholds_outside_0_1_are_refused(tmp_path, option, value):
    r = runner.invoke(app, ["split", str(tmp_path), option, value])
    said = " ".join(r.stderr.replace("│", " ").split())
    assert r.exit_code == EXIT_BAD_INPUT and f"Invalid value for '{option}'" in said, r.stderr


def test_a_frozen_learning_rate_stays_allowed():
    assert resolve_config("cpu", {"mixmatch_lr": "0"}).mixmatch_lr == 0.0
