"""The report's link back to the data: check that DATA_ROOT holds the very files the split was run on,
and make thumbnails of them.

The check recomputes the dataset fingerprint with the loader's own function (``dataset_fingerprint``)
over the artifact's relative paths read under DATA_ROOT, so a report can never show a thumbnail of a
file that was changed, renamed or swapped since the split.
"""

from __future__ import annotations

import base64
import hashlib
import io
from pathlib import Path, PurePosixPath

from PIL import Image, UnidentifiedImageError

from ..data.imagefolder import _to_rgb, dataset_fingerprint
from ..errors import BadInputError
from ..artifacts.split import SplitArtifact

_MAX_LISTED = 8  # files named in one error message


def _listed(names: list[str]) -> str:
    more = f"\n  ... and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else ""
    return "\n  " + "\n  ".join(names[:_MAX_LISTED]) + more


def check_data_root(data: SplitArtifact, root: Path) -> None:
    """BadInputError unless every sample's file is under ``root`` and the fingerprint matches."""
    root = Path(root)
    if not root.is_dir():
        raise BadInputError(f"{root}: no such folder. Pass --data the ImageFolder root the split was run on "
                            f"(the artifact was written for {data.data_root}).")
    unsafe = [p for p in data.paths if PurePosixPath(p).is_absolute() or ".." in PurePosixPath(p).parts]
    if unsafe:
        raise BadInputError(f"{data.path}: sample paths leave the data root ({unsafe[0]!r}). "
                            "The artifact is damaged or was not written by bsd-audit.")
    missing = [str(root / p) for p in data.paths if not (root / p).is_file()]
    if missing:
        raise BadInputError(f"{len(missing)} of {len(data)} image file(s) of {data.path} are missing under {root}:"
                            f"{_listed(missing)}\nPass --data the folder the split was run on "
                            f"(the artifact was written for {data.data_root}).")
    digests = []
    for p in data.paths:
        try:
            digests.append(hashlib.sha256((root / p).read_bytes()).digest())
        except OSError as exc:
            raise BadInputError(f"{root / p}: cannot be read ({exc.strerror}). Give the tool read access.") from exc
    found = dataset_fingerprint(data.paths, digests)
    if found != data.fingerprint:
        raise BadInputError(f"{root}: its files differ from the ones {data.path} was computed on (fingerprint "
                            f"{found[:12]}..., artifact {data.fingerprint[:12]}...; written for {data.data_root}). "
                            "Pass the unchanged dataset, or re-run split on this one.")


def thumbnail_png(path: Path, size: int = 96) -> bytes:
    """The image at ``path`` as a PNG fitting ``size`` x ``size``. Small images are enlarged by a whole
    factor with nearest-neighbour sampling, so a trigger's pixels stay sharp squares."""
    try:
        with Image.open(path) as img:
            img.load()
            rgb = _to_rgb(img)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        raise BadInputError(f"{path}: cannot be decoded for a thumbnail ({exc}). "
                            "Is this the data the split was run on?") from exc
    w, h = rgb.size
    if max(w, h) <= size:
        k = max(1, size // max(w, h))
        rgb = rgb.resize((w * k, h * k), Image.NEAREST)
    else:
        rgb.thumbnail((size, size), Image.LANCZOS)
    buf = io.BytesIO()
    rgb.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
