"""In a CI log (stderr not a terminal) a long run says where it is: a plain line at each stage's start
and epoch, and at least every 30 s within a long stage, with elapsed time and ETA; --json keeps that
progress on stderr (stdout holds the JSON alone) and --quiet silences it. The resolved config is one
line unless --verbose asks for every field (the artifact stores them all either way)."""

from __future__ import annotations

import io
import json

from rich.console import Console
from typer.testing import CliRunner

from bsd_audit.cli import LineProgressReporter, app
from conftest import TINY_OVERRIDES

SETS = [a for k, v in {**TINY_OVERRIDES, "altruistic_warmup_epochs": 2}.items() for a in ("--set", f"{k}={v}")]
runner = CliRunner()


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def lines_of(reporter_run) -> list[str]:
    buf = io.StringIO()
    clock = Clock()
    reporter_run(LineProgressReporter(Console(file=buf, width=200), clock), clock)
    return buf.getvalue().splitlines()


def test_a_long_stage_prints_every_30_seconds_with_eta():
    def run(p, clock):
        p.start("load images", 10_000)
        for _ in range(100):  # 100 steps of 100 images, one second each
            clock.now += 1.0
            p.advance(100)
        p.finish()

    out = lines_of(run)
    assert out[0] == "[load images] 0/10000, 0 s elapsed: started"
    assert out[1] == "[load images] 3000/10000, 30 s elapsed, ETA 70 s"
    assert len(out) == 1 + 3 + 1 and out[-1].endswith(": done")  # start, 30/60/90 s, done


def test_an_epoch_stage_prints_every_epoch():
    def run(p, clock):
        p.start("BSD training", 5)
        for e in range(5):
            clock.now += 2.0
            p.advance(1, f"epoch {e + 1}")

    out = lines_of(run)
    assert len(out) == 6 and out[-1] == "[BSD training] 5/5, 10 s elapsed, ETA 0 s: epoch 5"


def test_json_keeps_progress_on_stderr_and_stdout_clean(tiny_poisoned, tmp_path):
    data, _, _ = tiny_poisoned
    r = runner.invoke(app, ["detect-target", str(data), "--out", str(tmp_path / "t.h5"), "--json", *SETS])
    assert r.exit_code == 0, r.output
    json.loads(r.stdout)  # the JSON alone
    assert "[altruistic warm-up (LGA)] 1/" in r.stderr and "ETA" in r.stderr
    assert r.stderr.count("config:") == 1 and '"T1"' not in r.stderr  # one line, not every field
    r = runner.invoke(app, ["detect-target", str(data), "--out", str(tmp_path / "t.h5"), "--json", "--quiet", *SETS])
    assert r.exit_code == 0 and "[altruistic" not in r.stderr and "config:" not in r.stderr


def test_verbose_prints_every_config_field(tiny_poisoned, tmp_path):
    data, _, _ = tiny_poisoned
    r = runner.invoke(app, ["detect-target", str(data), "--out", str(tmp_path / "t.h5"), "-q", "--verbose", *SETS])
    assert r.exit_code == 0, r.output
    line = next(x for x in r.stderr.splitlines() if x.startswith("config: {"))
    assert json.loads(line.removeprefix("config: "))["T1"] == TINY_OVERRIDES["T1"]
