"""Where a command may write: the checks every ``--out`` passes before any work starts, and the lock
that keeps two runs off the same output.

The rule (README, "Useful options"; docs/reliability.md): an output is never inside the dataset being audited and never one of
the command's own inputs; an existing file is replaced only when it is an earlier output of the same
kind (an artifact of that kind, or the same export format), or with ``--force``; the folder must be
writable, which is tried at once rather than after an hour of training.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Iterator

import h5py

from ..errors import BadInputError
from ..training.distributed import launched_as_main


def _inside(path: Path, folder: Path) -> bool:
    return folder == path or folder in path.parents


def check_output(out: Path, what: str, same_kind: Callable[[Path], bool], inputs: Iterable[Path | None] = (),
                 trees: Iterable[Path | None] = (), force: bool = False) -> str | None:
    """Refuse an ``out`` that would destroy something; return a note when it replaces an earlier
    output (for the log), else None. ``what`` names the kind ("split artifact"); ``same_kind(path)``
    says whether an existing file is one; ``inputs`` are the files the command reads, ``trees`` the
    image folders."""
    out = Path(out)
    if out.is_dir():
        raise BadInputError(f"{out}: is a folder. Give --out a file name.")
    if not out.parent.is_dir():
        raise BadInputError(f"{out.parent}: output folder does not exist. Create it or choose another --out.")
    real = out.parent.resolve() / out.name
    for tree in trees:
        if tree is not None and _inside(real, Path(tree).resolve()):
            raise BadInputError(f"{out}: inside the image folder {tree}; writing there would change the data. "
                                "Choose an --out outside the tree.")
    for src in inputs:
        if src is not None and Path(src).exists() and real.exists() and os.path.samefile(real, src):
            raise BadInputError(f"{out}: is also this command's input ({src}); writing it would destroy what is "
                                "being read. Choose another --out.")
    note = None
    if out.exists() or out.is_symlink():
        if not out.is_file():
            raise BadInputError(f"{out}: exists and is not a regular file. Choose another --out.")
        if same_kind(out):
            note = f"replacing {out} (an earlier {what})"
        elif force:
            note = f"replacing {out} (--force; it was not a {what})"
        else:
            raise BadInputError(f"{out}: exists and is not a {what}; it is left as it is. Choose another --out, "
                                "or pass --force to replace it.")
    _check_writable(out.parent)
    return note


def _check_writable(folder: Path) -> None:
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".bsd-audit-probe-"):
            pass
    except OSError as exc:
        raise BadInputError(f"{folder}: cannot write there ({exc.strerror or exc}). " + write_hint(exc.errno)) from exc


def write_hint(code: int | None) -> str:
    """The fix that fits a failed write."""
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return "Free disk space there, or choose another --out on a file system with room."
    return "Choose another --out in a folder you can write to, or fix the folder's permissions."


def is_artifact(kind: str) -> Callable[[Path], bool]:
    """``same_kind`` for an HDF5 artifact of ``kind``."""
    def check(path: Path) -> bool:
        try:
            if not h5py.is_hdf5(path):
                return False
            with h5py.File(path, "r") as f:
                return f.attrs.get("kind") == kind
        except OSError:
            return False
    return check


def starts_like(test: Callable[[str], bool]) -> Callable[[Path], bool]:
    """``same_kind`` for a text output: ``test`` reads the file's first 4 KiB."""
    def check(path: Path) -> bool:
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                return test(fh.read(4096))
        except OSError:
            return False
    return check


def lock_path(out: Path) -> Path:
    out = Path(out)
    return out.with_name(f".{out.name}.lock")


@contextlib.contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """Hold ``out`` for this run: a second run on the same ``--out`` is refused while this one runs.
    The lock is the operating system's (flock): it ends with the process, so a killed run leaves no
    stale lock behind. Under torchrun rank 0 holds it, as it alone writes."""
    if not launched_as_main():  # the lock is taken before the process group exists
        yield
        return
    path = lock_path(out)
    fd = _locked(path, out)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)


def _locked(path: Path, out: Path) -> int:
    """An open descriptor of ``path`` holding its lock. A run that ends unlinks the file; one that
    opened it just before must not keep a lock on that unlinked file, so the lock counts only when
    the name still leads to the locked file."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise BadInputError(f"{path.parent}: cannot write there ({exc.strerror or exc}). "
                                + write_hint(exc.errno)) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise BadInputError(f"{out}: another bsd-audit run is writing this output now (lock {path}). Wait for "
                                "it to finish, or choose another --out.") from None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)
