"""Hostile entries in a dataset tree end in exit 2 with a message that names the file and says what
it is: a name that is not UTF-8, a FIFO named like an image (which would block forever), an HDF5 or
empty file with an image's name. An empty class folder is a warning in the summary, not a silent
drop. --skip-bad-files audits the rest and lists every skipped file. Ctrl-C ends a run at once, even
with a decode worker blocked on a read."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest
from typer.testing import CliRunner

from bsd_audit.cli import app
from bsd_audit.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK
from conftest import TINY_OVERRIDES
from input_helpers import build_tree

SETS = [a for k, v in {**TINY_OVERRIDES, "altruistic_warmup_epochs": 1}.items() for a in ("--set", f"{k}={v}")]
runner = CliRunner()


def detect(data: Path, out: Path, *extra: str):
    return runner.invoke(app, ["detect-target", str(data), "--out", str(out), *SETS, *extra])


def refused(r, *needles: str) -> None:
    assert r.exit_code == EXIT_BAD_INPUT, (r.exit_code, r.output)
    assert "Traceback" not in r.output
    for n in needles:
        assert n in r.stderr, (n, r.stderr)


def tree(tmp_path: Path) -> Path:
    return build_tree(tmp_path / "data", {"ant": 8, "bee": 8})


def test_a_name_that_is_not_utf8_is_named_and_refused(tmp_path):
    data = tree(tmp_path)
    src = next((data / "ant").iterdir()).read_bytes()
    with open(os.fsencode(data / "ant") + b"/bad\xff\xfe.png", "wb") as fh:
        fh.write(src)
    refused(detect(data, tmp_path / "t.h5", "-q"), "bad\\xff\\xfe.png", "not valid UTF-8", "Rename it")


def test_a_fifo_named_like_an_image_is_refused_without_blocking(tmp_path):
    data = tree(tmp_path)
    os.mkfifo(data / "bee" / "pipe.png")
    r = subprocess.run([sys.executable, "-m", "bsd_audit", "detect-target", str(data), "--out", str(tmp_path / "t.h5"),
                        "-q", *SETS], capture_output=True, text=True, timeout=60)
    assert r.returncode == EXIT_BAD_INPUT, r.stderr
    assert "pipe.png: is a named pipe (FIFO), not an image file" in r.stderr


def test_a_non_image_file_says_what_it_is(tmp_path):
    data = tree(tmp_path)
    with h5py.File(data / "ant" / "artifact.png", "w") as f:
        f["x"] = [1, 2, 3]
    (data / "bee" / "empty.png").write_bytes(b"")
    r = detect(data, tmp_path / "t.h5", "-q")
    refused(r, "artifact.png: is not an image (an HDF5 file", "empty.png: is empty (0 bytes)")
    assert "decompression bomb" not in r.stderr


def test_an_empty_class_folder_is_a_warning_in_the_summary(tmp_path):
    data = tree(tmp_path)
    (data / "cat").mkdir()
    r = detect(data, tmp_path / "t.h5", "--json")
    assert r.exit_code == EXIT_OK, r.output
    s = json.loads(r.stdout)
    assert s["empty_classes"] == ["cat"] and s["classes"] == ["ant", "bee"]
    assert "warning: class folder cat/ holds no images" in r.stderr


def test_skip_bad_files_audits_the_rest_and_lists_every_one(tmp_path):
    data = build_tree(tmp_path / "data", {"ant": 12, "bee": 12})
    bad = [data / "ant" / f"broken_{i}.png" for i in range(10)]  # more than an error message lists
    for p in bad:
        p.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    refused(detect(data, tmp_path / "t.h5", "-q"), "10 file(s)", "--skip-bad-files")
    out = tmp_path / "t.h5"
    r = detect(data, out, "--json", "--skip-bad-files")
    assert r.exit_code == EXIT_OK, r.output
    s = json.loads(r.stdout)
    assert sorted(b["path"] for b in s["skipped_bad_files"]) == sorted(f"ant/{p.name}" for p in bad)
    assert s["num_samples"] == 24 and any("10 unusable file(s)" in w for w in s["warnings"])
    with h5py.File(out) as f:
        stored = json.loads(f.attrs["skipped_bad_files"])
        assert len(stored) == 10 and all(e["error"] for e in stored)
        assert not any(p.startswith("ant/broken") for p in (x.decode() for x in f["samples/path"][()]))


def test_ctrl_c_ends_a_run_whose_decode_worker_is_blocked(tmp_path):
    data = tree(tmp_path)
    script = ("import sys, time\n"
              "import bsd_audit.data.imagefolder as f\n"
              "f._read_one = lambda args: time.sleep(3600)  # a read that never returns (a hung mount)\n"
              "from bsd_audit.cli import main\n"
              "print('ready', flush=True)\n"
              "sys.argv = ['bsd-audit', *sys.argv[1:]]\n"
              "main()\n")
    p = subprocess.Popen([sys.executable, "-X", "faulthandler", "-c", script, "detect-target", str(data),
                          "--out", str(tmp_path / "t.h5"), "--no-cache", *SETS],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         # as from a terminal: SIGINT at its default in the child, whatever this process has.
                         # Without it the child ignored the SIGINT in every full run on an AVX2 CPU (its
                         # threads, dumped: the main one still waiting on the decode), never when run alone.
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert p.stdout.readline().strip() == "ready"
        time.sleep(3)  # into the decode
        p.send_signal(signal.SIGINT)
        try:
            code = p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGABRT)  # faulthandler prints where every thread is
            p.wait(timeout=10)
            pytest.fail("the interrupted run did not end; its threads:\n" + p.stderr.read()[-6000:])
    finally:
        p.kill()
    assert code == EXIT_INTERRUPTED, p.stderr.read()
    assert not (tmp_path / "t.h5").exists()


def test_markup_in_class_names_is_shown_as_it_is(tmp_path):
    data = build_tree(tmp_path / "data", {"ant": 8, "[bold]bee": 8})
    r = runner.invoke(app, ["split", str(data), "--out", str(tmp_path / "s.h5"), "--init-only", *SETS])
    assert r.exit_code == EXIT_OK, r.output
    assert "[bold]bee: " in r.stderr  # rich would have eaten "[bold]" as markup
