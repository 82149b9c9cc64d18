"""--out never destroys what the user did not name as an output: not the data being audited, not the
command's own inputs, not a file of another kind (unless --force); an earlier output of the same kind
is replaced, and the log says so. Two runs on one --out are refused while the first holds it, and a
killed run leaves no stale lock. An unwritable folder is refused before any work."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bsd_audit.artifacts.outputs import lock_path, output_lock
from bsd_audit.cli import app
from bsd_audit.errors import EXIT_BAD_INPUT, EXIT_OK
from conftest import TINY_OVERRIDES
from report_helpers import make_split_artifact

SETS = [a for k, v in {**TINY_OVERRIDES, "altruistic_warmup_epochs": 1}.items() for a in ("--set", f"{k}={v}")]
runner = CliRunner()


def detect(data: Path, out: Path, *extra: str):
    return runner.invoke(app, ["detect-target", str(data), "--out", str(out), "-q", *SETS, *extra])


def refused(r, *needles: str) -> None:
    assert r.exit_code == EXIT_BAD_INPUT, (r.exit_code, r.output)
    assert "Traceback" not in r.output
    for n in needles:
        assert n in r.stderr, (n, r.stderr)


def test_an_output_inside_the_audited_tree_is_refused(tiny_poisoned):
    data, _, _ = tiny_poisoned
    image = sorted((data / "cat").iterdir())[0]
    before = image.read_bytes()
    refused(detect(data, image), "inside the image folder")
    refused(detect(data, data / "ant" / "new.h5"), "inside the image folder")
    assert image.read_bytes() == before and not (data / "ant" / "new.h5").exists()


def test_a_command_never_writes_over_its_own_input(tmp_path):
    artifact, data, _ = make_split_artifact(tmp_path)
    before = artifact.read_bytes()
    refused(runner.invoke(app, ["export", str(artifact), "--out", str(artifact)]), "is also this command's input")
    refused(runner.invoke(app, ["export", str(artifact), "--out", str(artifact), "--force"]), "input")
    refused(runner.invoke(app, ["report", str(artifact), "--data", str(data), "--out", str(artifact)]), "input")
    assert artifact.read_bytes() == before


def test_a_file_of_another_kind_needs_force(tiny_poisoned, tmp_path):
    data, _, _ = tiny_poisoned
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    refused(detect(data, notes), "is not a target artifact", "--force")
    assert notes.read_text() == "my notes"
    r = runner.invoke(app, ["detect-target", str(data), "--out", str(notes), "--force", *SETS])
    assert r.exit_code == EXIT_OK, r.output
    assert f"replacing {notes} (--force; it was not a target artifact)" in r.stderr
    assert notes.read_bytes()[:4] == b"\x89HDF"


def test_an_earlier_output_of_the_same_kind_is_replaced_and_said(tiny_poisoned, tmp_path):
    data, _, _ = tiny_poisoned
    out = tmp_path / "target.h5"
    assert detect(data, out).exit_code == EXIT_OK
    r = runner.invoke(app, ["detect-target", str(data), "--out", str(out), *SETS])
    assert r.exit_code == EXIT_OK, r.output
    assert f"replacing {out} (an earlier target artifact)" in r.stderr
    split = tmp_path / "split.h5"
    refused(runner.invoke(app, ["split", str(data), "--out", str(out), "-q", *SETS]), "is not a split artifact")
    assert not split.exists()


def test_export_replaces_an_earlier_export_but_not_a_stranger(tmp_path):
    artifact, _, _ = make_split_artifact(tmp_path)
    csv = tmp_path / "rows.csv"
    assert runner.invoke(app, ["export", str(artifact), "--out", str(csv)]).exit_code == EXIT_OK
    assert runner.invoke(app, ["export", str(artifact), "--out", str(csv)]).exit_code == EXIT_OK
    other = tmp_path / "budget.csv"
    other.write_text("month,amount\n")
    refused(runner.invoke(app, ["export", str(artifact), "--out", str(other)]), "is not a CSV export")
    assert other.read_text() == "month,amount\n"


def test_a_second_run_on_the_same_out_is_refused_while_the_first_runs(tiny_poisoned, tmp_path):
    data, _, _ = tiny_poisoned
    out = tmp_path / "target.h5"
    with output_lock(out):  # what a first run holds for its whole length
        refused(detect(data, out), "another bsd-audit run is writing this output")
    assert not lock_path(out).exists()
    assert detect(data, out).exit_code == EXIT_OK


def test_a_killed_run_leaves_no_stale_lock(tmp_path):
    out = tmp_path / "split.h5"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from bsd_audit.artifacts.outputs import output_lock\n"
        "with output_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)"), str(out)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(Exception, match="another bsd-audit run"):
            with output_lock(out):
                pass
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        with output_lock(out):  # the kernel released the dead run's lock
            pass
    finally:
        holder.kill()


def test_an_unwritable_folder_is_refused_before_any_work(tiny_poisoned):
    data, _, _ = tiny_poisoned
    try:
        with tempfile.NamedTemporaryFile(dir="/sys"):
            pytest.skip("/sys is writable here")
    except OSError:
        pass
    t0 = time.perf_counter()
    r = detect(data, Path("/sys/target.h5"))
    refused(r, "/sys: cannot write there", "Choose another --out")
    assert "Free disk space" not in r.stderr
    assert time.perf_counter() - t0 < 20  # refused up front, not after decoding and training
