"""Text outputs (exports, reports) written atomically, like the HDF5 artifacts: a temporary file
beside the target, renamed into place only once complete, so a failure leaves no half-written file
and any previous file unchanged."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import BadInputError
from .h5 import atomic_path


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    if path.is_dir():
        raise BadInputError(f"{path}: is a folder. Give --out a file name.")
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
