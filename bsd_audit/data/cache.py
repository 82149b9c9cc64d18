"""The decode cache: a tree's decoded pixels kept on disk, so a second command does not decode again.

Where: ``cache_dir`` in the config; "" means $BSD_AUDIT_CACHE_DIR, else $XDG_CACHE_HOME/bsd-audit,
else ~/.cache/bsd-audit; "off" (or --no-cache) disables it. Deleting the folder is always safe.

Key: a digest of every file's relative path, size, mtime_ns and ctime_ns, the working resolution,
the decompression-bomb limit, the cache format and the tool's and Pillow's versions (a new resize
or colour conversion gives other pixels). A hit reuses the pixels and the stored dataset fingerprint
without opening a single image. What it cannot see is a file whose content changed while its size
and both time stamps stayed the same: ctime cannot be set back by user tools, so in practice that
takes a file system that keeps no time stamps (some FUSE / object-store mounts: use --no-cache
there), or a change within the file system's time-stamp granularity of the scan, which is why a tree
with files changed in the last _RACY_S seconds is decoded but not cached (the "racy" check of git's
index).

Files, per data root (one entry per root: a new key replaces the root's older entry):

    <root-id>-<key>.npy   the pixels, N x 3 x S x S uint8, C order
    <root-id>-<key>.json  what they are: key, shape, dataset fingerprint, root; written last

The pixels are an .npy file rather than raw bytes plus metadata or HDF5: a plain header then the
raw array, so rows sit at a fixed offset for positioned reads (HDF5's chunking and h5py's locks are
in the way of that), and the file explains itself to ``numpy.load(path, mmap_mode="r")``. Both
files are written under a temporary name in the same folder, fsynced and renamed; the JSON, renamed
last, is what makes an entry exist, so a decode killed at any point leaves nothing that looks
complete (its ``*.tmp`` file is removed by the next write of the same root once an hour old).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL

from .. import __version__

CACHE_FORMAT = 1
_RACY_S = 2.0  # files changed this recently are not cached: a further change could keep their time stamps
_STALE_TMP_S = 3600  # a temporary file untouched this long belongs to a killed run
_HEADER = {"descr": "|u1", "fortran_order": False}


def resolve_cache_dir(setting: str = "") -> Path | None:
    """The cache folder for config value ``setting``, or None when caching is off."""
    value = (setting or os.environ.get("BSD_AUDIT_CACHE_DIR", "")).strip()
    if value.lower() == "off":
        return None
    if value:
        return Path(value).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg) if xdg else Path.home() / ".cache") / "bsd-audit"


@dataclass
class CacheEntry:
    """One tree's place in the cache (whether or not it exists yet)."""

    folder: Path
    root_id: str
    key: str
    racy: bool  # some file changed less than _RACY_S ago: decode, but do not publish

    @property
    def stem(self) -> str:
        return f"{self.root_id}-{self.key}"

    @property
    def pixels(self) -> Path:
        return self.folder / f"{self.stem}.npy"

    @property
    def meta(self) -> Path:
        return self.folder / f"{self.stem}.json"


def cache_entry(folder: Path, root: Path, paths: list[str], image_size: int, max_image_pixels: int) -> CacheEntry | None:
    """The entry for this tree, from one stat per file (no file is opened). None when a file cannot be
    stat'ed: the decode then reports it in its own words."""
    real_root = str(Path(root).resolve())
    h = hashlib.sha256(json.dumps({"format": CACHE_FORMAT, "tool": __version__, "pillow": PIL.__version__,
                                   "image_size": image_size, "max_image_pixels": max_image_pixels,
                                   "root": real_root}, sort_keys=True).encode())
    newest = 0
    try:
        for rel in paths:
            st = os.stat(os.path.join(root, rel))
            h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0".encode("utf-8", "surrogateescape"))
            newest = max(newest, st.st_mtime_ns, st.st_ctime_ns)
    except OSError:
        return None
    racy = newest > time.time_ns() - int(_RACY_S * 1e9)
    root_id = hashlib.sha256(real_root.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return CacheEntry(Path(folder), root_id, h.hexdigest()[:32], racy)


@dataclass
class CachedPixels:
    """An entry found complete: an open file descriptor on its pixel file and where the rows start."""

    fd: int
    offset: int
    fingerprint: str
    path: Path


def open_cached(entry: CacheEntry, shape: tuple[int, ...]) -> CachedPixels | None:
    """The entry's pixels if it exists, is complete and holds ``shape``; None otherwise (a miss)."""
    try:
        meta = json.loads(entry.meta.read_text())
        if meta.get("format") != CACHE_FORMAT or meta.get("key") != entry.key or tuple(meta.get("shape", ())) != shape:
            return None
        fingerprint = str(meta["fingerprint"])
        fd = os.open(entry.pixels, os.O_RDONLY)
    except (OSError, ValueError, AttributeError, KeyError, TypeError):  # absent or damaged: a miss
        return None
    try:
        with open(fd, "rb", closefd=False) as fh:
            version = np.lib.format.read_magic(fh)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            got_shape, fortran, dtype = read_header(fh)
            offset = fh.tell()
        if (got_shape != shape or fortran or dtype != np.uint8
                or os.fstat(fd).st_size != offset + int(np.prod(shape))):
            raise ValueError("not the expected array")
    except (OSError, ValueError):  # damaged: a miss; the next publish replaces it
        os.close(fd)
        return None
    return CachedPixels(fd, offset, fingerprint, entry.pixels)


class PixelFile:
    """A pixel file being filled (rows written at any position, from any thread), published under
    its entry's name only when complete and asked to; otherwise removed (``discard``) or kept
    nameless for this process alone (``unlink``)."""

    def __init__(self, folder: Path, prefix: str, shape: tuple[int, ...]):
        self.folder, self.shape = Path(folder), tuple(shape)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=f"{prefix}.", suffix=".tmp")
        self.tmp: Path | None = Path(tmp)
        try:
            with open(self.fd, "wb", closefd=False) as fh:
                np.lib.format.write_array_header_1_0(fh, {**_HEADER, "shape": self.shape})
                self.offset = fh.tell()
            self.row_bytes = int(np.prod(self.shape[1:]))
            # Reserve the space now: a full disk fails here, before any decoding, not at row 40,000.
            nbytes = self.offset + int(np.prod(self.shape))
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(self.fd, 0, nbytes)
            else:  # pragma: no cover - macOS
                os.ftruncate(self.fd, nbytes)
        except BaseException:
            self.discard()
            raise

    def write_rows(self, start: int, rows: np.ndarray) -> None:
        data = memoryview(np.ascontiguousarray(rows)).cast("B")
        pos = self.offset + start * self.row_bytes
        while data.nbytes:
            n = os.pwrite(self.fd, data, pos)
            data, pos = data[n:], pos + n

    def publish(self, entry: CacheEntry, fingerprint: str, root: Path) -> None:
        """Make the file the entry's pixels (atomically), then write the entry's JSON (atomically), then
        drop the root's older entries."""
        os.fsync(self.fd)
        os.replace(self.tmp, entry.pixels)
        self.tmp = None
        meta = {"format": CACHE_FORMAT, "key": entry.key, "shape": list(self.shape), "fingerprint": fingerprint,
                "root": str(Path(root).resolve()), "tool_version": __version__,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=f"{entry.stem}.", suffix=".tmp")
        try:
            with open(fd, "w") as fh:
                json.dump(meta, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, entry.meta)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(self.folder)
        _drop_older(entry)

    def unlink(self) -> None:
        """Remove the name, keep the open file (for a disk store that must not be published)."""
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)
            self.tmp = None

    def discard(self) -> None:
        """Remove the file and close it (a failed or interrupted decode)."""
        self.unlink()
        self.close()

    def take_fd(self) -> int:
        """Hand the open descriptor over (to DiskImages, which closes it)."""
        fd, self.fd = self.fd, -1
        return fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _drop_older(entry: CacheEntry) -> None:
    """Remove the root's other entries (JSON first, so none is ever half-present) and temporary
    files of killed runs. Another process still reading an old pixel file keeps its open file."""
    now = time.time()
    for path in sorted(entry.folder.glob(f"{entry.root_id}-*"), key=lambda p: p.suffix != ".json"):
        if path in (entry.pixels, entry.meta):
            continue
        try:
            if path.suffix == ".tmp" and now - path.stat().st_mtime < _STALE_TMP_S:
                continue  # maybe another run's decode in progress
            path.unlink()
        except OSError:
            pass
