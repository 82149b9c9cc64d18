"""An interrupted artifact write leaves nothing half-written: no file at the path, no temp file beside
it, and a file already there unchanged. A full disk is reported by path, as the user's to fix."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from bsd_audit.errors import EXIT_BAD_INPUT, BadInputError
from bsd_audit.artifacts import h5 as artifacts
from bsd_audit.artifacts.h5 import atomic_h5

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def folder(tmp_path) -> Path:
    d = tmp_path / "out"
    d.mkdir()
    return d


@pytest.fixture
def previous(folder) -> tuple[Path, bytes]:
    """An artifact already at the path, as a finished earlier run would leave it."""
    path = folder / "split.h5"
    with atomic_h5(path) as f:
        f.attrs["kind"] = "previous"
        f.create_dataset("x", data=np.arange(10))
    return path, path.read_bytes()


def _write_some(f: h5py.File) -> None:
    f.attrs["kind"] = "new"
    f.create_dataset("big", data=np.random.default_rng(0).random((64, 64)))


def test_successful_write(folder):
    path = folder / "a.h5"
    with atomic_h5(path) as f:
        _write_some(f)
    with h5py.File(path) as f:
        assert f.attrs["kind"] == "new" and f["big"].shape == (64, 64)
    assert os.listdir(folder) == ["a.h5"]


@pytest.mark.parametrize("exc", [RuntimeError("bug mid-write"), KeyboardInterrupt(), SystemExit(1)])
def test_exception_inside_block_leaves_nothing(folder, exc):
    path = folder / "a.h5"
    with pytest.raises(type(exc)):
        with atomic_h5(path) as f:
            _write_some(f)
            raise exc
    assert not path.exists()
    assert os.listdir(folder) == []  # no temp file either


@pytest.mark.parametrize("exc", [RuntimeError("bug mid-write"), KeyboardInterrupt()])
def test_exception_inside_block_keeps_previous_file(previous, exc):
    path, before = previous
    with pytest.raises(type(exc)):
        with atomic_h5(path) as f:
            _write_some(f)
            raise exc
    assert path.read_bytes() == before
    assert os.listdir(path.parent) == [path.name]


def test_disk_full_inside_block(folder):
    path = folder / "a.h5"
    with pytest.raises(BadInputError) as info:
        with atomic_h5(path) as f:
            _write_some(f)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    msg = str(info.value)
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert str(path) in msg and "No space left on device" in msg and "nothing was written" in msg
    assert "Free disk space" in msg  # the fix
    assert isinstance(info.value.__cause__, OSError)  # the original error stays attached
    assert os.listdir(folder) == []


def test_disk_full_keeps_previous_file(previous):
    path, before = previous
    with pytest.raises(BadInputError) as info:
        with atomic_h5(path) as f:
            _write_some(f)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert "previous file is unchanged" in str(info.value)
    assert path.read_bytes() == before
    assert os.listdir(path.parent) == [path.name]


def test_disk_full_as_h5py_reports_it(folder):
    """h5py often gives the errno only inside the text of a RuntimeError: still recognised."""
    path = folder / "a.h5"
    with pytest.raises(BadInputError, match="No space left on device"):
        with atomic_h5(path) as f:
            _write_some(f)
            raise RuntimeError("Can't decrement id ref count (file write failed: errno = 28, "
                               "error message = 'No space left on device')")
    assert os.listdir(folder) == []


def test_disk_full_at_fsync(previous, monkeypatch):
    """A full disk often shows only when the bytes are flushed: the temp file still goes."""
    path, before = previous

    def fsync(_fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(artifacts.os, "fsync", fsync)
    with pytest.raises(BadInputError, match="No space left on device"):
        with atomic_h5(path) as f:
            _write_some(f)
    assert path.read_bytes() == before
    assert os.listdir(path.parent) == [path.name]


def test_failed_rename(previous, monkeypatch):
    path, before = previous

    def replace(_a, _b):
        raise OSError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(artifacts.os, "replace", replace)
    with pytest.raises(BadInputError, match="Permission denied"):
        with atomic_h5(path) as f:
            _write_some(f)
    assert path.read_bytes() == before
    assert os.listdir(path.parent) == [path.name]


def test_other_os_errors_are_not_disguised(folder):
    """An OSError that is not about space or permissions is not turned into advice about disks."""
    path = folder / "a.h5"
    with pytest.raises(FileNotFoundError):
        with atomic_h5(path) as f:
            _write_some(f)
            raise FileNotFoundError(errno.ENOENT, "some input vanished")
    assert os.listdir(folder) == []


def test_missing_output_folder(tmp_path):
    path = tmp_path / "missing" / "a.h5"
    with pytest.raises(BadInputError) as info:
        with atomic_h5(path):
            pass
    assert str(path.parent) in str(info.value) and "does not exist" in str(info.value)
    assert not path.parent.exists()


def test_real_write_failure_from_the_os(tmp_path):
    """A real I/O failure, not a simulated one: a file-size limit (RLIMIT_FSIZE) makes the OS refuse
    the write (EFBIG), as a full disk refuses it with ENOSPC; HDF5 reports it on close. Run in a
    child process so the limit cannot touch pytest's own files."""
    script = textwrap.dedent(f"""
        import os, resource, signal, sys
        import numpy as np
        from bsd_audit.errors import BadInputError
        from bsd_audit.artifacts.h5 import atomic_h5
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        folder = {str(tmp_path)!r}
        path = os.path.join(folder, "a.h5")
        with atomic_h5(path) as f:  # a small previous file, written before the limit
            f.create_dataset("x", data=np.arange(4))
        before = open(path, "rb").read()
        resource.setrlimit(resource.RLIMIT_FSIZE, (64_000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
        try:
            with atomic_h5(path) as f:
                f.create_dataset("big", data=np.zeros(100_000))
        except BadInputError as exc:
            print("REFUSED", exc)
        assert open(path, "rb").read() == before, "previous file changed"
        assert os.listdir(folder) == ["a.h5"], os.listdir(folder)
        print("CLEAN")
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "REFUSED" in p.stdout and "File too large" in p.stdout, p.stdout + p.stderr
    assert str(tmp_path / "a.h5") in p.stdout
    assert "CLEAN" in p.stdout
