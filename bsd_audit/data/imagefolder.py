"""ImageFolder scan and decode: untrusted files in, one uint8 tensor on the compute device out.

The tree is read the way torchvision's ImageFolder reads it (class index = position of the folder
name in the sorted list of sub-folders, the same image extensions), but the sample order is the
sorted list of relative paths, so an index in any artifact maps back to one file. Every image is
decoded exactly once, converted to RGB and resized to the working resolution; the result lives on
the device where training happens, and augmentation works on whole batches there.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import BadInputError

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


@dataclass
class ImageDataset:
    """A decoded ImageFolder: ``images`` is N x 3 x S x S uint8 on ``device``."""

    root: Path
    classes: list[str]
    paths: list[str]
    labels: torch.Tensor  # int64, on device
    images: torch.Tensor  # uint8, N x 3 x S x S, on device
    fingerprint: str  # sha256 over relative paths and file bytes
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def channel_stats(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and std of the data itself (no trusted statistics exist)."""
        x = self.images.float().div_(255)
        mean = x.mean(dim=(0, 2, 3))
        std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
        return mean.tolist(), std.tolist()


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
    for name in entries:
        class_dir = root / name
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
                _check_inside(full, real_root)
                items.append((rel, len(classes)))
                found += 1
        if found:
            classes.append(name)
        else:
            skipped.append(f"{name}/ (no images)")
    if not items:
        raise _bad(root, "holds no images in class sub-folders",
                   f"Put images in root/<class>/ folders (extensions: {', '.join(IMG_EXTENSIONS)}).")
    if len(classes) < 2:
        raise _bad(root, f"has a single class ({classes[0]!r})",
                   "A backdoor audit needs at least two classes: point the tool at the folder that holds all class folders.")
    # Re-index classes after dropping empty folders, as torchvision would refuse them; sorted order kept.
    items.sort(key=lambda t: t[0])
    return ScannedTree(root, classes, [p for p, _ in items], np.array([c for _, c in items], dtype=np.int64), skipped)


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


def decode_image(data: bytes, name: str, size: int, max_pixels: int) -> np.ndarray:
    """Bytes of one image file -> size x size x 3 uint8. Raises BadInputError naming ``name``."""
    # PIL refuses images over twice its own fixed limit before our check runs, so a limit raised by
    # the user (as the error below advises) would still be refused: raise PIL's to match. Only ever
    # raised, never lowered or restored, so concurrent decodes cannot undo each other.
    if Image.MAX_IMAGE_PIXELS is not None and max_pixels > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        img = Image.open(io.BytesIO(data))
        w, h = img.size
        if w * h > max_pixels or w <= 0 or h <= 0:
            raise _bad(name, f"declares {w}x{h} pixels, over the limit of {max_pixels} (a decompression bomb?)",
                       "Remove the file, or raise max_image_pixels (--set max_image_pixels=N) if it is genuine.")
        img.load()
        img = _to_rgb(img)
        if img.size != (size, size):
            img = img.resize((size, size), Image.BILINEAR)
        arr = np.asarray(img, dtype=np.uint8)
    except BadInputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _bad(name, "is a decompression bomb (declared size far over the pixel limit)",
                   "Remove the file, or raise max_image_pixels if it is genuine.") from exc
    except UnidentifiedImageError as exc:
        raise _bad(name, "is not an image PIL can identify", "Remove it or replace it with a valid image file.") from exc
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


def load_imagefolder(root: Path, image_size: int = 32, device: torch.device | str = "cpu",
                     max_image_pixels: int = 89_478_485, workers: int | None = None,
                     progress=None, tree: ScannedTree | None = None) -> ImageDataset:
    """Scan, decode and fingerprint an ImageFolder tree.

    Every unusable file is collected and reported in one error (up to a few names, then a count),
    so the user can fix the tree in one pass. ``progress`` is an optional callable(advance: int).
    """
    tree = tree or scan_tree(root)  # a caller that already scanned (to size a progress bar) passes it
    n = len(tree.paths)
    images = np.empty((n, image_size, image_size, 3), dtype=np.uint8)
    digests: list[bytes] = [b""] * n
    errors: list[str] = []
    jobs = [(tree.root, rel, image_size, max_image_pixels) for rel in tree.paths]
    # PIL releases the GIL while decoding, so threads use every core without process start-up cost.
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        for i, (arr, digest, err) in enumerate(pool.map(_read_one, jobs, chunksize=64)):
            if err is not None:
                errors.append(err)
            else:
                images[i] = arr
                digests[i] = digest
            if progress is not None:
                progress(1)
    if errors:
        listed = "\n  ".join(errors[:_MAX_LISTED])
        more = f"\n  ... and {len(errors) - _MAX_LISTED} more" if len(errors) > _MAX_LISTED else ""
        raise BadInputError(f"{len(errors)} file(s) in {tree.root} cannot be used:\n  {listed}{more}")
    tensor = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(device)
    labels = torch.from_numpy(tree.labels).to(device)
    return ImageDataset(tree.root, tree.classes, tree.paths, labels, tensor, dataset_fingerprint(tree.paths, digests),
                        tree.skipped)


def dataset_fingerprint(paths: list[str], digests: list[bytes]) -> str:
    """The dataset's fingerprint: SHA-256 over each relative path and the SHA-256 of its file's bytes,
    in sample order. Every artifact stores it; anything that reads the tree again (the report) checks
    it with this same function."""
    fp = hashlib.sha256()
    for rel, digest in zip(paths, digests):
        fp.update(rel.encode("utf-8") + b"\0" + digest)
    return fp.hexdigest()
