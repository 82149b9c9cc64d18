"""Helpers for the input-handling tests (test_refuses_*, test_accepts_image_modes, test_cli_bad_input,
test_atomic_writes): tiny ImageFolder trees generated with PIL in tmp_path (no real data, no GPU,
nothing under /work/shared). A plain module, not conftest.py, so it cannot collide with fixtures there."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def image_bytes(size: tuple[int, int] = (16, 16), fmt: str = "PNG", seed: int = 0, mode: str = "RGB") -> bytes:
    """A random-noise image encoded as ``fmt`` (noise compresses badly, so truncation bites)."""
    arr = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    im = Image.fromarray(arr)
    if mode != "RGB":
        im = im.convert(mode)
    buf = io.BytesIO()
    im.save(buf, fmt)
    return buf.getvalue()


def write_image(path: Path, size: tuple[int, int] = (16, 16), seed: int = 0, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = fmt or {".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP"}.get(path.suffix.lower(), "PNG")
    path.write_bytes(image_bytes(size, fmt, seed))
    return path


def build_tree(root: Path, classes: dict[str, int], size: int = 16, seed: int = 0) -> Path:
    """root/<class>/img_NNN.png, ``classes`` maps class name -> number of images."""
    k = seed
    for name, n in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            write_image(root / name / f"img_{i:03d}.png", (size, size), seed=k)
            k += 1
    return root


def good_tree(tmp_path: Path) -> Path:
    """A valid two-class tree (3 images each) that a test then spoils in one way."""
    return build_tree(tmp_path / "data", {"cat": 3, "dog": 3})
