"""ImageFolder scan and decode: untrusted files in, N x 3 x S x S uint8 images out.

The tree is read the way torchvision's ImageFolder reads it (class index = position of the folder
name in the sorted list of sub-folders, the same image extensions), but the sample order is the
sorted list of relative paths, so an index in any artifact maps back to one file. Every image is
decoded once, converted to RGB and resized to the working resolution, in parallel, and kept in the
decode cache (data/cache.py) for the next command. The result lives on the device where training
happens when it fits there, and augmentation works on whole batches there; when it does not, it
stays in the cache's file and batches are read from it (data/store.py).
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tempfile
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import BadInputError
from .cache import CacheEntry, PixelFile, cache_entry, open_cached
from .store import DiskImages, choose_store, shard_rows, shards

# decode_image's own size check (max_image_pixels) is the decompression-bomb guard and names the
# file; PIL's warning for the same image would only repeat it as a bare Python warning on stderr.
# (A filter set once here, not warnings.catch_warnings per image: that is not thread-safe and the
# decode runs in a thread pool.)
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

# Same extensions as torchvision.datasets.folder.IMG_EXTENSIONS (kept here so the scan does not
# depend on a private constant).
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

_MAX_LISTED = 8  # bad files named in one error message


@dataclass
class ScannedTree:
    root: Path
    classes: list[str]
    paths: list[str]  # relative POSIX paths, sorted
    labels: np.ndarray  # int64 class index per path
    skipped: list[str] = field(default_factory=list)  # files without an image extension
    empty_classes: list[str] = field(default_factory=list)  # class folders without images (not classes)


@dataclass
class ImageDataset:
    """A decoded ImageFolder. ``images[idx]`` (idx a LongTensor) gives N x 3 x S x S uint8 on the
    device, in idx order, whichever store holds them: a tensor on the device, or DiskImages."""

    root: Path
    classes: list[str]
    paths: list[str]
    labels: torch.Tensor  # int64, on device
    images: torch.Tensor | DiskImages  # uint8, N x 3 x S x S
    fingerprint: str  # sha256 over relative paths and file bytes
    skipped: list[str] = field(default_factory=list)
    store: str = "memory"  # memory | disk (data/store.py)
    bad_files: list[tuple[str, str]] = field(default_factory=list)  # (path, why) left out by --skip-bad-files

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def channel_stats(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and std of the data itself (no trusted statistics exist), from a histogram
        of each channel's uint8 values built shard by shard: exact (integer counts), and a few MiB of
        memory whatever the data's size, where a float copy of the whole data is four times its size
        (and widening each shard to sum it still took ~200 MB and 4x the time on CIFAR-10)."""
        hist = None
        for shard in shards(self.images, shard_rows(self.images)):
            h = torch.stack([torch.bincount(shard[:, c].reshape(-1), minlength=256) for c in range(shard.shape[1])])
            hist = h if hist is None else hist + h
        hist = hist.double().cpu()
        values = torch.arange(256, dtype=torch.float64)
        count = hist.sum(dim=1)
        mean = hist @ values / count
        var = (hist @ values.square() - count * mean.square()) / (count - 1).clamp_min(1)  # unbiased, as torch.std
        return (mean / 255).tolist(), (var.clamp_min(0).sqrt() / 255).clamp_min(1e-3).tolist()

    def copy_of(self) -> np.ndarray:
        """Per sample, the index of the first sample of its class with the same decoded pixels (its own
        index when it has no earlier copy). Scraped data repeats itself, and repeated pictures are one
        piece of evidence, not several: the held-out check counts each once."""
        labels = self.labels.cpu().numpy()
        first: dict[tuple[int, bytes], int] = {}
        out = np.arange(len(labels), dtype=np.int64)
        row = 0
        for shard in shards(self.images, shard_rows(self.images)):
            for pixels in shard.cpu().numpy():
                key = (int(labels[row]), hashlib.blake2b(pixels.tobytes(), digest_size=16).digest())
                out[row] = first.setdefault(key, row)
                row += 1
        return out


class BadFilesError(BadInputError):
    """Files of the tree that cannot be used; ``bad`` lists every one as (relative path, message)."""

    def __init__(self, message: str, bad: list[tuple[str, str]]):
        super().__init__(message)
        self.bad = bad


def _bad(path: Path | str, what: str, fix: str) -> BadInputError:
    return BadInputError(f"{path}: {what}. {fix}")


def scan_tree(root: Path) -> ScannedTree:
    """List classes and image files; refuse trees that cannot be audited."""
    root = Path(root)
    if not root.exists():
        raise _bad(root, "no such folder", "Pass the root of an ImageFolder tree (root/<class>/<image>).")
    if not root.is_dir():
        raise _bad(root, "is a file, not a folder", "Pass the root of an ImageFolder tree (root/<class>/<image>).")
    try:
        entries = sorted(e.name for e in os.scandir(root) if e.is_dir())
    except PermissionError as exc:
        raise _bad(root, "cannot be read (permission denied)", "Give the tool read access to the folder.") from exc
    real_root = root.resolve()
    classes: list[str] = []
    items: list[tuple[str, int]] = []
    skipped: list[str] = []
    empty: list[str] = []
    for name in entries:
        class_dir = root / name
        _check_utf8(class_dir)
        _check_inside(class_dir, real_root)
        found = 0
        for dirpath, dirnames, filenames in os.walk(class_dir, followlinks=False, onerror=_raise_walk_error):
            dirnames.sort()
            for d in dirnames:  # a symlinked sub-folder must not lead outside the tree
                if os.path.islink(os.path.join(dirpath, d)):
                    _check_inside(Path(dirpath) / d, real_root)
            for fname in sorted(filenames):
                full = Path(dirpath) / fname
                rel = full.relative_to(root).as_posix()
                if not fname.lower().endswith(IMG_EXTENSIONS):
                    skipped.append(rel)
                    continue
                _check_utf8(full)
                _check_inside(full, real_root)
                _check_regular(full)
                items.append((rel, len(classes)))
                found += 1
        if found:
            classes.append(name)
        else:
            skipped.append(f"{name}/ (no images)")
            empty.append(name)
    if not items:
        raise _bad(root, "holds no images in class sub-folders",
                   f"Put images in root/<class>/ folders (extensions: {', '.join(IMG_EXTENSIONS)}).")
    if len(classes) < 2:
        raise _bad(root, f"has a single class ({classes[0]!r})",
                   "A backdoor audit needs at least two classes: point the tool at the folder that holds all class folders.")
    # Re-index classes after dropping empty folders, as torchvision would refuse them; sorted order kept.
    items.sort(key=lambda t: t[0])
    return ScannedTree(root, classes, [p for p, _ in items], np.array([c for _, c in items], dtype=np.int64), skipped,
                       empty)


def _check_utf8(path: Path) -> None:
    """Names are stored in every artifact as UTF-8: one that is not (bytes the file system allows)
    cannot be, so it is refused by name rather than failing mid-run."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(path).decode("utf-8", errors="backslashreplace")
        raise _bad(shown, "has a name that is not valid UTF-8",
                   "Rename it with UTF-8 characters (e.g. convmv -f latin1 -t utf8), or move it out of the tree.") from None


def _check_regular(path: Path) -> None:
    """Only regular files are read: a FIFO, socket or device named like an image would block the
    decode forever or stream without end."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise _bad(path, f"cannot be read ({exc.strerror})", "Check the file system, or remove the entry.") from exc
    if not stat.S_ISREG(mode):
        kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")
        raise _bad(path, f"is {kind}, not an image file", "Remove it from the tree: only regular files are read.")


def _raise_walk_error(exc: OSError):
    raise _bad(exc.filename, "cannot be read (permission denied)" if isinstance(exc, PermissionError) else exc.strerror,
               "Give the tool read access to every file in the tree.")


def _check_inside(path: Path, real_root: Path) -> None:
    if os.path.islink(path):
        target = Path(os.path.realpath(path))
        if target != real_root and real_root not in target.parents:
            raise _bad(path, f"is a symlink that leaves the dataset tree (-> {target})",
                       "Copy the file into the tree or remove the link; the tool only reads files inside the root.")


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB. 16-bit and float images are rescaled, not clipped."""
    if img.mode.startswith("I;16") or (img.mode == "I" and img.format == "PNG"):
        # 16-bit samples have a fixed full scale (0..65535): divide by 257 rather than stretch
        # min..max, which turned a flat grey image black and brightened dark ones. (Older Pillow
        # opens 16-bit grey PNGs as mode I.)
        arr = np.asarray(img, dtype=np.float64).clip(0, 65535) / 257.0
        img = Image.fromarray(arr.round().astype(np.uint8), mode="L")
    elif img.mode in ("I", "F"):  # 32-bit int / float: no defined full scale, so stretch min..max
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = np.zeros_like(arr) if hi <= lo else (arr - lo) / (hi - lo) * 255.0
        img = Image.fromarray(scaled.round().astype(np.uint8), mode="L")
    if img.mode == "P" or img.mode == "PA":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA"):
        # Composite on black: transparent pixels must not leak arbitrary colour values.
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = Image.alpha_composite(bg, rgba)
    return img.convert("RGB") if img.mode != "RGB" else img


# What a file that is not an image most often is, by its first bytes.
_SIGNATURES = ((b"\x89HDF\r\n\x1a\n", "an HDF5 file, such as a bsd-audit artifact"), (b"%PDF", "a PDF document"),
               (b"PK\x03\x04", "a ZIP archive"), (b"\x1f\x8b", "a gzip archive"), (b"<!DOCTYPE html", "an HTML page"),
               (b"<html", "an HTML page"), (b"\x7fELF", "a program"))


def _is_text(head: bytes) -> bool:
    for cut in range(4):  # the window may end inside a multi-byte character
        try:
            text = head[:len(head) - cut].decode("utf-8")
            break
        except UnicodeDecodeError:
            continue
    else:
        return False
    return bool(text) and all(c.isprintable() or c in "\t\r\n" for c in text)


def _what_is(data: bytes) -> str:
    for magic, what in _SIGNATURES:
        if data.startswith(magic):
            return what
    head = data[:512]
    # A lone "{" is one byte in 256 of any binary file: call it JSON only when the rest reads as text.
    if _is_text(head):
        return "JSON or other text" if head.lstrip()[:1] in (b"{", b"[") else "a text file"
    return f"unknown content starting {data[:8].hex(' ')}"


def decode_image(data: bytes, name: str, size: int, max_pixels: int) -> np.ndarray:
    """Bytes of one image file -> size x size x 3 uint8: the whole image resized to the square. Raises
    BadInputError naming ``name``."""
    # PIL refuses images over twice its own fixed limit before our check runs, so a limit raised by
    # the user (as the error below advises) would still be refused: raise PIL's to match. Only ever
    # raised, never lowered or restored, so concurrent decodes cannot undo each other.
    if Image.MAX_IMAGE_PIXELS is not None and max_pixels > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = max_pixels
    if not data:
        raise _bad(name, "is empty (0 bytes)", "Remove it or replace it with a complete copy.")
    if data.startswith(tuple(magic for magic, _ in _SIGNATURES[:5])):  # PIL has stubs that "open" some of these
        raise _bad(name, f"is not an image ({_what_is(data)})", "Remove it or replace it with a valid image file.")
    try:
        img = Image.open(io.BytesIO(data))
        w, h = img.size
        if w * h > max_pixels or w <= 0 or h <= 0:
            raise _bad(name, f"declares {w}x{h} pixels, over the limit of {max_pixels} (a decompression bomb?)",
                       "Remove the file, or raise max_image_pixels (--set max_image_pixels=N) if it is genuine.")
        img.load()
        img = _to_rgb(img)
        if img.size != (size, size):  # the whole image, squared (data/sizes.py: one rule everywhere)
            img = img.resize((size, size), Image.BILINEAR)
        arr = np.asarray(img, dtype=np.uint8)
    except BadInputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _bad(name, "is a decompression bomb (declared size far over the pixel limit)",
                   "Remove the file, or raise max_image_pixels if it is genuine.") from exc
    except UnidentifiedImageError as exc:
        raise _bad(name, f"is not an image ({_what_is(data)})", "Remove it or replace it with a valid image file.") from exc
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
        raise _bad(name, f"is corrupt or truncated ({exc})", "Remove it or replace it with a complete copy.") from exc
    if arr.shape != (size, size, 3):  # belt and braces: a decoder returning an odd shape
        raise _bad(name, f"decoded to an unexpected shape {arr.shape}", "Re-save it as an ordinary RGB image.")
    return arr


def _read_one(args: tuple[Path, str, int, int]) -> tuple[np.ndarray | None, bytes, str | None]:
    root, rel, size, max_pixels = args
    path = root / rel
    try:
        data = path.read_bytes()
    except PermissionError:
        return None, b"", f"{path}: cannot be read (permission denied). Give the tool read access to the file."
    except OSError as exc:
        return None, b"", f"{path}: cannot be read ({exc.strerror}). Check the file system."
    digest = hashlib.sha256(data).digest()
    try:
        return decode_image(data, str(path), size, max_pixels), digest, None
    except BadInputError as exc:
        return None, digest, str(exc)


_CHUNK = 256  # images per decode task: a 32x32 image decodes in ~0.1 ms, a task per image costs as much


def load_imagefolder(root: Path, image_size: int = 32, device: torch.device | str = "cpu",
                     max_image_pixels: int = 89_478_485, workers: int | None = None,
                     progress: Callable[[int], None] | None = None, tree: ScannedTree | None = None,
                     store: str = "memory", cache_dir: Path | None = None,
                     log: Callable[[str], None] | None = None, skip_bad: bool = False) -> ImageDataset:
    """Scan, decode and fingerprint an ImageFolder tree.

    Every unusable file is collected and reported in one error (up to a few names, then a count),
    so the user can fix the tree in one pass. ``progress`` is an optional callable(advance: int),
    ``log`` an optional callable(message) told which store holds the data and what the cache did.
    ``store``: memory (one tensor on ``device``), disk (DiskImages over a pixel file) or auto (disk
    when the decoded size is over data/store.py's MEMORY_SHARE of the memory available on
    ``device``). ``cache_dir``: the decode cache's folder (data/cache.py), None for no cache.
    ``skip_bad``: leave unusable files out instead (the dataset's ``bad_files`` lists them), for
    scraped data where a few broken files are normal; the rest is decoded again without them.
    """
    tree = tree or scan_tree(root)  # a caller that already scanned (to size a progress bar) passes it
    try:
        return _load(tree, image_size, device, max_image_pixels, workers, progress, store, cache_dir, log)
    except BadFilesError as exc:
        if not skip_bad:
            raise
        (log or (lambda message: None))(f"skipping {len(exc.bad)} unusable file(s) (--skip-bad-files); "
                                        "decoding the rest again")
        ds = _load(_without(tree, {rel for rel, _ in exc.bad}), image_size, device, max_image_pixels, workers,
                   lambda n: None, store, cache_dir, log)
        ds.bad_files = exc.bad
        return ds


def _without(tree: ScannedTree, bad: set[str]) -> ScannedTree:
    """The tree less the ``bad`` files; a class left with none is refused, as scan_tree would."""
    keep = [i for i, p in enumerate(tree.paths) if p not in bad]
    labels = tree.labels[keep]
    emptied = [c for i, c in enumerate(tree.classes) if not (labels == i).any()]
    if emptied:
        raise _bad(tree.root / emptied[0], "has no usable image left once the unusable files are skipped",
                   "Fix the files of that class, or remove the class folder.")
    return ScannedTree(tree.root, tree.classes, [tree.paths[i] for i in keep], labels, tree.skipped, tree.empty_classes)


def _load(tree: ScannedTree, image_size: int, device, max_image_pixels: int, workers: int | None,
          progress: Callable[[int], None] | None, store: str, cache_dir: Path | None,
          log: Callable[[str], None] | None) -> ImageDataset:
    progress = progress or (lambda n: None)
    log = log or (lambda message: None)
    n = len(tree.paths)
    shape = (n, 3, image_size, image_size)
    kind, why = choose_store(store, int(np.prod(shape)), device)
    entry = cache_entry(cache_dir, tree.root, tree.paths, image_size, max_image_pixels) if cache_dir is not None else None
    cached = open_cached(entry, shape) if entry is not None else None
    if cached is not None:
        disk = DiskImages(cached.fd, cached.offset, shape, device, str(cached.path))
        fingerprint = cached.fingerprint
        if kind == "memory":
            images = _read_all(disk, progress)
        else:
            images = disk
            progress(n)
        log(f"decoded images read from the cache ({cached.path})")
    elif kind == "memory":
        pixels = np.empty(shape, dtype=np.uint8)
        fingerprint = _decode_all(tree, image_size, max_image_pixels, workers, _ArraySink(pixels), progress)
        images = torch.from_numpy(pixels).to(device)
        if entry is not None and _publishable(entry, tree.root, log):
            _save(entry, pixels, fingerprint, tree.root, log)
    else:
        pf = _pixel_file(entry, shape, log)
        try:
            fingerprint = _decode_all(tree, image_size, max_image_pixels, workers, _FileSink(pf), progress)
            where = _publish_disk(pf, entry, fingerprint, tree.root, log)
        except BaseException:
            pf.discard()
            raise
        images = DiskImages(pf.take_fd(), pf.offset, shape, device, where)
    log(f"data store: {kind} ({why})")
    labels = torch.from_numpy(tree.labels).to(device)
    return ImageDataset(tree.root, tree.classes, tree.paths, labels, images, fingerprint, tree.skipped, kind)


def load_with_classes(root: Path, classes: list[str], image_size: int, device: torch.device | str,
                      what: str = "test") -> ImageDataset:
    """A test ImageFolder with its labels mapped to a model's class indices by folder name (a
    triggered set usually lacks the target's folder, so positions would not match)."""
    tree = scan_tree(root)
    unknown = [c for c in tree.classes if c not in classes]
    if unknown:
        raise BadInputError(f"{root}: {what} class folder(s) {', '.join(unknown)} are not classes of the model "
                            f"({', '.join(classes)}). Pass a test set with the training set's class folders.")
    ds = load_imagefolder(root, image_size, device, tree=tree)
    mapping = torch.tensor([classes.index(c) for c in ds.classes], device=device)
    return ImageDataset(ds.root, list(classes), ds.paths, mapping[ds.labels], ds.images, ds.fingerprint, ds.skipped)


class _ArraySink:
    """Decode straight into the in-memory array (no per-chunk copy)."""

    def __init__(self, pixels: np.ndarray):
        self.pixels = pixels

    def rows(self, start: int, stop: int) -> np.ndarray:
        return self.pixels[start:stop]

    def write_rows(self, start: int, rows: np.ndarray) -> None:
        pass  # already in place


class _FileSink:
    """Decode a chunk into a buffer of its own, then write it at its place in the pixel file."""

    def __init__(self, pf: PixelFile):
        self.pf = pf

    def rows(self, start: int, stop: int) -> np.ndarray:
        return np.empty((stop - start,) + self.pf.shape[1:], dtype=np.uint8)

    def write_rows(self, start: int, rows: np.ndarray) -> None:
        self.pf.write_rows(start, rows)


def _decode_all(tree: ScannedTree, image_size: int, max_image_pixels: int, workers: int | None, sink,
                progress: Callable[[int], None]) -> str:
    """Decode every image into ``sink`` (rows(start, stop) -> writable N' x 3 x S x S array, then
    write_rows(start, rows)) in parallel, and return the dataset's fingerprint. Tasks are chunks of
    consecutive images, at most two per worker in flight, so a disk sink never holds more than a few
    chunks in memory; results are taken in order, so errors are listed in sample order."""
    n = len(tree.paths)
    workers = workers or os.cpu_count() or 1
    chunk = max(1, min(_CHUNK, -(-n // (4 * workers))))
    errors: list[tuple[str, str]] = []
    fp = hashlib.sha256()

    def task(start: int) -> tuple[list[bytes], list[tuple[str, str]]]:
        stop = min(start + chunk, n)
        rows = sink.rows(start, stop)
        digests, errs = [], []
        for i in range(start, stop):
            arr, digest, err = _read_one((tree.root, tree.paths[i], image_size, max_image_pixels))
            digests.append(digest)
            if err is not None:
                errs.append((tree.paths[i], err))
            else:
                rows[i - start] = arr.transpose(2, 0, 1)  # HWC -> CHW, in place
        if not errs and not errors:  # once a file is bad nothing will be kept: only collect the errors
            sink.write_rows(start, rows)
        return digests, errs

    # PIL releases the GIL in its decoders and resize, so threads use every core on large images without
    # process start-up cost; on 32x32 ones the Python around them holds the GIL, and two processes were
    # ~1.5x faster (docs/decisions/0023-decode-with-threads.md) for a decode the cache makes once per dataset.
    pool = ThreadPoolExecutor(max_workers=workers)
    finished = False
    try:
        starts = iter(range(0, n, chunk))
        pending = deque((s, pool.submit(task, s)) for s in islice(starts, 2 * workers))
        while pending:
            start, future = pending.popleft()
            digests, errs = future.result()
            errors.extend(errs)
            _fingerprint_update(fp, tree.paths[start:start + chunk], digests)  # one chunk at a time
            progress(len(digests))
            nxt = next(starts, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(task, nxt)))
        finished = True
    finally:
        # interrupted (Ctrl-C): do not wait for a worker blocked on a slow read, the CLI exits at once
        pool.shutdown(wait=finished, cancel_futures=True)
    if errors:
        listed = "\n  ".join(message for _, message in errors[:_MAX_LISTED])
        more = f"\n  ... and {len(errors) - _MAX_LISTED} more" if len(errors) > _MAX_LISTED else ""
        raise BadFilesError(f"{len(errors)} file(s) in {tree.root} cannot be used:\n  {listed}{more}\n"
                            "Fix or remove them, or pass --skip-bad-files to audit the rest (every skipped file "
                            "is then listed in the summary and the artifact).", errors)
    return fp.hexdigest()


def _read_all(disk: DiskImages, progress: Callable[[int], None]) -> torch.Tensor:
    """The whole pixel file into one tensor on the disk store's device (the memory store from a cache hit)."""
    try:
        pixels = np.empty(tuple(disk.shape), dtype=np.uint8)
        step = shard_rows(disk)
        for start in range(0, len(disk), step):
            disk.read_into(start, pixels[start:start + step])
            progress(len(pixels[start:start + step]))
    finally:
        disk.close()
    return torch.from_numpy(pixels).to(disk.device)


def _cache_warning(folder: Path, exc: OSError, log: Callable[[str], None], instead: str) -> None:
    log(f"warning: cannot write the decode cache in {folder} ({exc.strerror or exc}); {instead}. "
        "Set cache_dir (--set cache_dir=DIR) or BSD_AUDIT_CACHE_DIR to a writable folder, or pass --no-cache.")


def _publishable(entry: CacheEntry, root: Path, log: Callable[[str], None]) -> bool:
    if entry.racy:
        log(f"decode cache not written: files in {root} changed in the last seconds, and a further change "
            "could keep their time stamps; the next command will cache them")
    return not entry.racy


def _save(entry: CacheEntry, pixels: np.ndarray, fingerprint: str, root: Path, log: Callable[[str], None]) -> None:
    """Write decoded in-memory pixels to the cache; a failure only costs the next command a decode."""
    try:
        pf = PixelFile(entry.folder, entry.stem, pixels.shape)
    except OSError as exc:
        _cache_warning(entry.folder, exc, log, "continuing without it")
        return
    try:
        step = shard_rows(pixels)
        for start in range(0, len(pixels), step):
            pf.write_rows(start, pixels[start:start + step])
        pf.publish(entry, fingerprint, root)
        log(f"decoded images cached in {entry.pixels}")
    except OSError as exc:
        pf.discard()
        _cache_warning(entry.folder, exc, log, "continuing without it")
    finally:
        pf.close()


def _publish_disk(pf: PixelFile, entry: CacheEntry | None, fingerprint: str, root: Path,
                  log: Callable[[str], None]) -> str:
    """Publish a disk store's finished pixel file as the cache entry where it may be; otherwise take
    its name away (it lives as long as this process holds it open). Returns how to name it."""
    if entry is not None and pf.tmp is not None and _publishable(entry, root, log):
        try:
            pf.publish(entry, fingerprint, root)
            log(f"decoded images cached in {entry.pixels}")
            return str(entry.pixels)
        except OSError as exc:
            _cache_warning(entry.folder, exc, log, "the disk store keeps its file for this run only")
    pf.unlink()
    return f"an unnamed file in {pf.folder}"


def _pixel_file(entry: CacheEntry | None, shape: tuple[int, ...], log: Callable[[str], None]) -> PixelFile:
    """The file a disk store decodes into: the cache entry's (published once complete), else a
    nameless file in the temporary folder, for this process alone."""
    if entry is not None:
        try:
            return PixelFile(entry.folder, entry.stem, shape)
        except OSError as exc:
            _cache_warning(entry.folder, exc, log, "the disk store uses a temporary file instead")
    folder = Path(tempfile.gettempdir())
    try:
        pf = PixelFile(folder, "bsd-audit-pixels", shape)
    except OSError as exc:
        raise BadInputError(f"{folder}: cannot hold the decoded images for the disk store ({exc.strerror or exc}; "
                            f"{int(np.prod(shape)) / 2**20:.0f} MiB needed). Free space there, point TMPDIR or "
                            "cache_dir at a folder with room, or use --data-store memory.") from exc
    pf.unlink()  # nameless at once: nothing is left behind, whatever happens to this process
    return pf


def dataset_fingerprint(paths: list[str], digests: list[bytes]) -> str:
    """The dataset's fingerprint: SHA-256 over each relative path and the SHA-256 of its file's bytes,
    in sample order. Every artifact stores it; anything that reads the tree again (the report) checks
    it with this same function."""
    fp = hashlib.sha256()
    _fingerprint_update(fp, paths, digests)
    return fp.hexdigest()


def _fingerprint_update(fp, paths: list[str], digests: list[bytes]) -> None:
    """Feed samples, in order, to the fingerprint's hash: the one rule, whether all at once or by chunks."""
    for rel, digest in zip(paths, digests):
        fp.update(rel.encode("utf-8") + b"\0" + digest)
