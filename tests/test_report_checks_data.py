"""The report shows the files the split was run on, or nothing: a missing, changed or foreign file
under --data is an error naming it (exit 2), and no report (not even a partial one) is written."""

from __future__ import annotations

import shutil

import numpy as np
import h5py
import pytest
from typer.testing import CliRunner

from bsd_audit.cli import app
from report_helpers import copy_with, make_split_artifact

runner = CliRunner()


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return make_split_artifact(tmp_path_factory.mktemp("checks"))


def _report(artifact, data, out):
    return runner.invoke(app, ["report", str(artifact), "--data", str(data), "--out", str(out)])


def _refused(r, *needles):
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith("error: ") and "Traceback" not in r.output
    for n in needles:
        assert n in r.stderr, (n, r.stderr)


def test_missing_image_named_and_nothing_written(split, tmp_path):
    artifact, data, _ = split
    copy = shutil.copytree(data, tmp_path / "data")
    victim = sorted(copy.rglob("*.png"))[5]
    victim.unlink()
    outdir = tmp_path / "out"
    outdir.mkdir()
    r = _report(artifact, copy, outdir / "report.html")
    _refused(r, str(victim), "missing")
    assert list(outdir.iterdir()) == []  # no report, no temp file


def test_previous_report_left_unchanged(split, tmp_path):
    artifact, data, _ = split
    out = tmp_path / "report.html"
    out.write_text("<title>bsd-audit report: previous</title>")  # an earlier report: it may be replaced
    _refused(_report(artifact, tmp_path / "nowhere", out), "nowhere")
    assert out.read_text() == "<title>bsd-audit report: previous</title>"


def test_changed_file_fails_the_fingerprint(split, tmp_path):
    artifact, data, _ = split
    copy = shutil.copytree(data, tmp_path / "data")
    victim = sorted(copy.rglob("*.png"))[0]
    victim.write_bytes(victim.read_bytes() + b"\0")
    out = tmp_path / "report.html"
    _refused(_report(artifact, copy, out), "differ", "fingerprint")
    assert not out.exists()


def test_paths_that_leave_the_root_are_refused(split, tmp_path):
    artifact, data, _ = split

    def escape_root(f):
        paths = [p.decode() for p in f["samples/path"][()]]
        paths[0] = "../../etc/passwd"
        del f["samples/path"]
        f.create_dataset("samples/path", data=np.array(paths, dtype=object), dtype=h5py.string_dtype("utf-8"))
    bad = copy_with(artifact, tmp_path / "bad.h5", escape_root)
    out = tmp_path / "report.html"
    _refused(_report(bad, data, out), "leave the data root")
    assert not out.exists()
