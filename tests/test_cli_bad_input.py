"""Through the command line, bad input gives exit code 2, a message that names the offending file
(unwrapped, so it can be copied or grepped from a CI log), no traceback, and no artifact: nothing
at --out, no temp file beside it, and an artifact already there left byte-identical."""

from __future__ import annotations

import errno
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
from typer.testing import CliRunner

from bsd_audit.api import detect_target
from bsd_audit.cli import app
from bsd_audit.config import lga_epochs, resolve_config
from bsd_audit.errors import EXIT_BAD_INPUT, BadInputError
from bsd_audit.data.imagefolder import load_imagefolder
from bsd_audit.artifacts.target import read_target
from input_helpers import build_tree, image_bytes, write_image

TINY = {"device": "cpu", "arch": "fastnet", "width": 8, "altruistic_warmup_epochs": 1, "image_size": 16}
TINY_SETS = [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
REPO = Path(__file__).resolve().parents[1]

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A valid 3-class dataset and a real detect-target artifact computed on it."""
    base = tmp_path_factory.mktemp("tiny")
    data = build_tree(base / "data", {"ant": 12, "bee": 12, "cat": 12})
    target = base / "target.h5"
    detect_target(data, target, resolve_config("cpu", dict(TINY)))
    return data, target


def _cli(*args: str):
    return runner.invoke(app, [*args, "-q", *TINY_SETS])


def _assert_refused(r, *needles: str) -> None:
    assert r.exit_code == EXIT_BAD_INPUT, (r.exit_code, r.output)
    assert "Traceback" not in r.output and "Traceback" not in r.stderr
    assert r.stderr.startswith("error: "), r.stderr
    for n in needles:
        assert n in r.stderr, (n, r.stderr)


def _listing(folder: Path) -> set[str]:
    return set(os.listdir(folder))


# ------------------------------------------------------------------------------ bad datasets
def _spoil(kind: str, tmp_path: Path) -> tuple[Path, Path]:
    """A dataset spoiled in one way; returns (data root, the path the message must name)."""
    deep = tmp_path / "a_folder_name_long_enough_that_paths_pass_eighty_columns" / "data"
    if kind == "missing":
        return deep, deep
    if kind == "file":
        f = write_image(tmp_path / "data.png")
        return f, f
    if kind == "empty":
        deep.mkdir(parents=True)
        return deep, deep
    if kind == "single":
        build_tree(deep, {"cat": 3})
        return deep, deep
    root = build_tree(deep, {"cat": 3, "dog": 3})
    bad = root / "dog" / "bad [1] file.png"  # brackets and spaces must survive the console
    if kind == "corrupt":
        bad.write_bytes(random.Random(1000).randbytes(1000))
    elif kind == "truncated":
        bad = bad.with_suffix(".jpg")
        data = image_bytes((64, 64), "JPEG", seed=3)
        bad.write_bytes(data[: len(data) // 2])
    elif kind == "text":
        bad = bad.with_suffix(".jpg")
        bad.write_text("hello")
    elif kind == "symlink":
        bad.symlink_to(write_image(tmp_path / "outside" / "x.png"))
    elif kind == "unicode":
        bad = root / "cat" / "ünïcödé ✓.png"
        bad.write_bytes(b"\x89PNG\r\n\x1a\n" + random.Random(100).randbytes(100))
    return root, bad


KINDS = ["missing", "file", "empty", "single", "corrupt", "truncated", "text", "symlink", "unicode"]


@pytest.mark.parametrize("kind", KINDS)
def test_bad_dataset_detect_target(tmp_path, kind):
    root, bad = _spoil(kind, tmp_path)
    outdir = tmp_path / "out"
    outdir.mkdir()
    r = _cli("detect-target", str(root), "--out", str(outdir / "target.h5"))
    _assert_refused(r, str(bad))
    assert _listing(outdir) == set()  # no artifact, no temp file


@pytest.mark.parametrize("command", ["detect-target", "split"])
def test_existing_artifact_is_left_byte_identical(tmp_path, tiny, command):
    _, target = tiny
    root, bad = _spoil("corrupt", tmp_path)
    outdir = tmp_path / "out"
    outdir.mkdir()
    out = outdir / "previous.h5"
    shutil.copy(target, out)
    before = out.read_bytes()
    r = _cli(command, str(root), "--out", str(out), "--force")  # --force: a split may replace a target artifact
    _assert_refused(r, str(bad))
    assert out.read_bytes() == before
    assert _listing(outdir) == {"previous.h5"}


def test_bad_dataset_through_python_m(tmp_path):
    """The real entry point, in a fresh process, with the default console width (no COLUMNS)."""
    root, bad = _spoil("corrupt", tmp_path)
    out = tmp_path / "target.h5"
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    p = subprocess.run([sys.executable, "-m", "bsd_audit", "detect-target", str(root), "--out", str(out),
                        "--set", "device=cpu"], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == EXIT_BAD_INPUT, p.stderr
    assert str(bad) in p.stderr, p.stderr
    assert "Traceback" not in p.stderr + p.stdout
    assert p.stdout == ""  # stdout stays clean for --json consumers
    assert not out.exists()


# ------------------------------------------------------------------------------ bad --out
def test_out_in_missing_folder(tmp_path, tiny):
    data, _ = tiny
    missing = tmp_path / "no" / "such" / "folder"
    r = _cli("split", str(data), "--out", str(missing / "split.h5"))
    _assert_refused(r, str(missing), "output folder does not exist")
    assert not (tmp_path / "no").exists()


def test_out_is_a_folder(tmp_path, tiny):
    data, _ = tiny
    folder = tmp_path / "results"
    folder.mkdir()
    r = _cli("detect-target", str(data), "--out", str(folder))
    _assert_refused(r, str(folder), "is a folder")
    assert _listing(folder) == set()


def test_disk_full_while_writing(tmp_path, tiny, monkeypatch):
    """The disk fills up while the artifact is written: a clear error naming --out, the previous file
    unchanged, no partial file, and the finished warm-up's checkpoint kept, so the same command run
    again once there is space writes the artifact without training again."""
    data, target = tiny
    import bsd_audit.artifacts.target as results

    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as m:
        m.setattr(results, "write_tensors", full)
        outdir = tmp_path / "out"
        outdir.mkdir()
        out = outdir / "target.h5"
        shutil.copy(target, out)
        before = out.read_bytes()
        r = _cli("detect-target", str(data), "--out", str(out))
        _assert_refused(r, str(out), "No space left on device", "previous file is unchanged", "Free disk space",
                        f"checkpoint, {outdir / 'target.ckpt.h5'}: run the same command again")
        assert out.read_bytes() == before
        assert _listing(outdir) == {"target.h5", "target.ckpt.h5"}
    r = runner.invoke(app, ["detect-target", str(data), "--out", str(out), "--json", *TINY_SETS])
    assert r.exit_code == 0, r.output
    assert '"resumed_from": {"epoch": %d, "phase": "target"' % lga_epochs(resolve_config("cpu", dict(TINY)), 36) in r.stdout
    assert _listing(outdir) == {"target.h5"}


# ------------------------------------------------------------------------------ bad --target-from
def _split_from(data: Path, target_from: Path, tmp_path: Path):
    outdir = tmp_path / "out"
    outdir.mkdir(exist_ok=True)
    r = _cli("split", str(data), "--target-from", str(target_from), "--out", str(outdir / "split.h5"))
    return r, outdir


def test_target_from_not_hdf5(tmp_path, tiny):
    data, _ = tiny
    bogus = tmp_path / "target.h5"
    bogus.write_text("not an artifact\n")
    r, outdir = _split_from(data, bogus, tmp_path)
    _assert_refused(r, str(bogus), "not an HDF5 file")
    assert _listing(outdir) == set()


def test_target_from_missing(tmp_path, tiny):
    data, _ = tiny
    r, outdir = _split_from(data, tmp_path / "nope.h5", tmp_path)
    _assert_refused(r, str(tmp_path / "nope.h5"), "no such file")
    assert _listing(outdir) == set()


def test_target_from_truncated(tmp_path, tiny):
    data, target = tiny
    cut = tmp_path / "cut.h5"
    raw = target.read_bytes()
    cut.write_bytes(raw[: len(raw) // 2])
    r, outdir = _split_from(data, cut, tmp_path)
    _assert_refused(r, str(cut), "truncated")
    assert _listing(outdir) == set()


def test_target_from_other_hdf5(tmp_path, tiny):
    data, _ = tiny
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("x", data=[1, 2, 3])
    r, _ = _split_from(data, other, tmp_path)
    _assert_refused(r, str(other), "not a bsd-audit artifact")


def test_target_from_wrong_kind(tmp_path, tiny):
    data, target = tiny
    wrong = tmp_path / "wrong.h5"
    shutil.copy(target, wrong)
    with h5py.File(wrong, "a") as f:
        f.attrs["kind"] = "split"
    r, _ = _split_from(data, wrong, tmp_path)
    _assert_refused(r, str(wrong), "'split' artifact where a 'target' one is needed")


def test_target_from_other_dataset(tmp_path, tiny):
    data, target = tiny
    other = tmp_path / "other_data"
    shutil.copytree(data, other)
    write_image(other / "bee" / "img_000.png", seed=1234)  # one file differs
    r, outdir = _split_from(other, target, tmp_path)
    _assert_refused(r, str(target), "computed on a different dataset", "re-run without it")
    assert _listing(outdir) == set()


@pytest.mark.parametrize("damage", ["missing_dataset", "dangling_link", "missing_attr"])
def test_target_from_incomplete(tmp_path, tiny, damage):
    """An artifact with a part missing (an interrupted copy, a hand edit, a broken link inside the
    file) is refused by name, never read half-way or crashed on."""
    data, target = tiny
    broken = tmp_path / "broken.h5"
    shutil.copy(target, broken)
    with h5py.File(broken, "a") as f:
        if damage == "missing_dataset":
            del f["target/votes"]
        elif damage == "dangling_link":
            f["weights/altruistic/extra.weight"] = h5py.SoftLink("/nowhere")
        else:
            del f["target"].attrs["confidence"]
    ds = load_imagefolder(data, image_size=16, workers=1)
    with pytest.raises(BadInputError) as info:
        read_target(broken, ds)
    assert str(broken) in str(info.value) and "incomplete target artifact" in str(info.value)
    r, outdir = _split_from(data, broken, tmp_path)
    _assert_refused(r, str(broken), "incomplete target artifact", "Re-run detect-target")
    assert _listing(outdir) == set()


def test_target_from_another_altruistic_net(tmp_path, tiny):
    """A target artifact whose altruistic model is another net (another preset's) cannot seed this
    split's: refused by name with the fix, not a tensor-shape error half-way through."""
    data, target = tiny
    outdir = tmp_path / "out"
    outdir.mkdir()
    r = runner.invoke(app, ["split", str(data), "--target-from", str(target), "--out", str(outdir / "split.h5"), "-q",
                            *TINY_SETS, "--set", "altruistic_arch=resnet18", "--set", "altruistic_width=8"])
    _assert_refused(r, str(target), "altruistic model is fastnet width 8", "this run's is resnet18 width 8",
                    "re-run detect-target")
    assert _listing(outdir) == set()


def test_a_reader_that_stops_early_is_no_error(tmp_path):
    """`bsd-audit config | head -1`: stdout's reader closes the pipe; the tool stops quietly, exit 0."""
    p = subprocess.Popen([sys.executable, "-m", "bsd_audit", "config", "--preset", "cpu"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdout.close()  # gone before the tool writes (it imports torch first): its write meets a broken pipe
    stderr = p.stderr.read()
    p.wait(timeout=60)
    assert p.returncode == 0 and b"internal error" not in stderr and b"Traceback" not in stderr, stderr
