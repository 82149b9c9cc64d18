"""export and report refuse a file that is not a complete split artifact: exit 2, one line naming the
file, no traceback, and nothing written."""

from __future__ import annotations

import h5py
import pytest
from typer.testing import CliRunner

from bsd_audit.cli import app
from report_helpers import copy_with, make_split_artifact

runner = CliRunner()


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return make_split_artifact(tmp_path_factory.mktemp("bad"))


def _bad_files(artifact, folder) -> dict:
    text = folder / "notes.h5"
    text.write_text("not an artifact\n")
    truncated = folder / "truncated.h5"
    truncated.write_bytes(artifact.read_bytes()[: artifact.stat().st_size // 3])
    foreign = folder / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = [1, 2, 3]

    def as_target(f):
        f.attrs["kind"] = "target"

    def no_scores(f):
        del f["scores/indicator"]

    def short_pool(f):
        del f["pools/clean"]
        f["pools/clean"] = [True, False]

    return {
        "not HDF5": (text, "not an HDF5 file"),
        "truncated": (truncated, "truncated"),
        "HDF5 but not bsd-audit": (foreign, "not a bsd-audit artifact"),
        "wrong kind": (copy_with(artifact, folder / "target.h5", as_target), "'target' artifact"),
        "missing scores": (copy_with(artifact, folder / "noscores.h5", no_scores), "scores/indicator"),
        "wrong length": (copy_with(artifact, folder / "short.h5", short_pool), "pools/clean"),
        "absent": (folder / "absent.h5", "no such file"),
    }


@pytest.mark.parametrize("command", ["export", "report"])
def test_refused_with_exit_2_and_file_named(split, tmp_path, command):
    artifact, data, _ = split
    for case, (path, needle) in _bad_files(artifact, tmp_path).items():
        out = tmp_path / "out.html"
        args = ["export", str(path), "--out", str(out)] if command == "export" else \
            ["report", str(path), "--data", str(data), "--out", str(out)]
        r = runner.invoke(app, args)
        assert r.exit_code == 2, (case, r.output)
        assert r.stderr.startswith("error: ") and str(path) in r.stderr and needle in r.stderr, (case, r.stderr)
        assert "Traceback" not in r.output, case
        assert not out.exists(), case
