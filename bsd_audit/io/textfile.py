"""Text outputs (exports, reports) written atomically, like the HDF5 artifacts: a temporary file
beside the target, renamed into place only once complete, so a failure leaves no half-written file
and any previous file unchanged."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from ..errors import BadInputError
from .artifacts import _WRITE_ERRNOS, _write_errno


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    if path.is_dir():
        raise BadInputError(f"{path}: is a folder. Give --out a file name.")
    if not path.parent.exists():
        raise BadInputError(f"{path.parent}: output folder does not exist. Create it or choose another --out.")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        code = _write_errno(exc)
        if code in _WRITE_ERRNOS:
            kept = "; the previous file is unchanged" if path.exists() else ""
            raise BadInputError(f"{path}: cannot be written ({os.strerror(code)}); nothing was written{kept}. "
                                "Free disk space, or choose another --out in a writable folder.") from exc
        raise
