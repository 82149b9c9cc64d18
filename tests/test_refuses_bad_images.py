"""A file in the tree that cannot be used is refused with an error that names the file and the fix:
corrupt, truncated, not an image, a decompression bomb, a symlink out of the tree, unreadable.
Files without an image extension are skipped, not errors."""

from __future__ import annotations

import os
import random
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from bsd_audit.cli import app
from bsd_audit.data.imagefolder import load_imagefolder, scan_tree
from bsd_audit.errors import EXIT_BAD_INPUT, BadInputError
from input_helpers import good_tree, image_bytes, write_image


def _refused(root: Path, bad: Path, *words: str, **kw) -> str:
    with pytest.raises(BadInputError) as info:
        load_imagefolder(root, image_size=16, workers=1, **kw)
    msg = str(info.value)
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert str(bad) in msg, msg
    for w in words:
        assert w in msg, msg
    return msg


def _png_declaring(w: int, h: int) -> bytes:
    """A tiny, well-formed PNG header that declares w x h pixels (1-bit grey) with one row of data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    row = b"\0" + b"\0" * ((w + 7) // 8)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(row)) + chunk(b"IEND", b""))


# ------------------------------------------------------------------------------ broken files
def test_corrupt_image(tmp_path):
    root = good_tree(tmp_path)
    bad = root / "dog" / "corrupt.png"
    # Binary noise that happens to start with "{" is still unknown content, not JSON.
    bad.write_bytes(b"{" + random.Random(0).randbytes(2047))
    msg = _refused(root, bad, "is not an image (unknown content starting 7b")
    assert "Remove it or replace it" in msg


def test_json_file_with_image_extension(tmp_path):
    root = good_tree(tmp_path)
    bad = root / "cat" / "meta.jpg"
    bad.write_text('{"label": "chat", "source": "https://example.org/\u00e9t\u00e9"}\n', encoding="utf-8")
    _refused(root, bad, "is not an image (JSON or other text)")


@pytest.mark.parametrize("fmt,ext", [("PNG", ".png"), ("JPEG", ".jpg")])
def test_truncated_image(tmp_path, fmt, ext):
    root = good_tree(tmp_path)
    data = image_bytes((64, 64), fmt, seed=9)
    bad = root / "cat" / f"cut{ext}"
    bad.write_bytes(data[: len(data) // 2])  # valid header, half the pixel data
    msg = _refused(root, bad, "corrupt or truncated")
    assert "complete copy" in msg


def test_text_file_with_image_extension(tmp_path):
    root = good_tree(tmp_path)
    bad = root / "cat" / "x.jpg"
    bad.write_text("this is not a picture\n")
    _refused(root, bad, "is not an image (a text file)")


def test_empty_file_with_image_extension(tmp_path):
    root = good_tree(tmp_path)
    bad = root / "cat" / "empty.png"
    bad.write_bytes(b"")
    _refused(root, bad, "is empty (0 bytes)")


def test_every_bad_file_is_listed_in_one_error(tmp_path):
    """The user fixes the tree in one pass: every bad file named (up to a cap, then a count)."""
    root = good_tree(tmp_path)
    bad = [root / "cat" / f"bad{i:02d}.png" for i in range(11)]
    for b in bad:
        b.write_bytes(b"junk")
    with pytest.raises(BadInputError) as info:
        load_imagefolder(root, image_size=16, workers=2)
    msg = str(info.value)
    assert msg.startswith(f"11 file(s) in {root} cannot be used")
    assert all(str(b) in msg for b in bad[:8])
    assert "... and 3 more" in msg


# ------------------------------------------------------------------------------ decompression bombs
def test_decompression_bomb_over_the_configured_limit(tmp_path):
    root = good_tree(tmp_path)  # 16x16 images: 256 pixels, under the limit
    bomb = write_image(root / "dog" / "big.png", (200, 200))
    msg = _refused(root, bomb, "200x200", "over the limit of 1000", "decompression bomb", max_image_pixels=1000)
    assert "--set max_image_pixels=N" in msg  # the fix


def test_declared_size_is_refused_before_decoding(tmp_path):
    """A file that declares 100k x 100k pixels is refused from its header (nothing is allocated)."""
    root = good_tree(tmp_path)
    bomb = root / "cat" / "bomb.png"
    bomb.write_bytes(_png_declaring(100_000, 100_000))
    _refused(root, bomb, "decompression bomb")


def test_raised_limit_is_honoured(tmp_path, monkeypatch):
    """Raising max_image_pixels (as the error advises) lets a large genuine image through, even past
    PIL's own fixed limit. PIL's limit is lowered here so that a 200x200 image stands for a huge one:
    it is over twice PIL's limit, where PIL itself refuses to open it."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    root = good_tree(tmp_path)
    write_image(root / "cat" / "big.png", (200, 200))
    ds = load_imagefolder(root, image_size=16, workers=1, max_image_pixels=100_000)
    assert "cat/big.png" in ds.paths
    # and the configured limit still refuses what is over it
    _refused(root, root / "cat" / "big.png", "over the limit of 30000", max_image_pixels=30_000)


def test_decompression_bomb_through_the_cli(tmp_path):
    root = good_tree(tmp_path)
    bomb = write_image(root / "dog" / "big.png", (200, 200))
    out = tmp_path / "target.h5"
    r = CliRunner().invoke(app, ["detect-target", str(root), "--out", str(out), "-q",
                                 "--set", "device=cpu", "--set", "max_image_pixels=1000"])
    assert r.exit_code == EXIT_BAD_INPUT, r.output
    assert str(bomb) in r.stderr and "decompression bomb" in r.stderr
    assert "Traceback" not in r.output
    assert not out.exists()


# ------------------------------------------------------------------------------ symlinks
def test_file_symlink_out_of_tree(tmp_path):
    root = good_tree(tmp_path)
    outside = write_image(tmp_path / "elsewhere" / "secret.png")
    link = root / "cat" / "link.png"
    link.symlink_to(outside)
    for call in (lambda: scan_tree(root), lambda: load_imagefolder(root, image_size=16, workers=1)):
        with pytest.raises(BadInputError) as info:
            call()
        msg = str(info.value)
        assert str(link) in msg and "leaves the dataset tree" in msg and str(outside) in msg, msg
        assert "Copy the file into the tree or remove the link" in msg


def test_class_folder_symlink_out_of_tree(tmp_path):
    root = good_tree(tmp_path)
    outside = tmp_path / "other_dataset" / "bird"
    write_image(outside / "a.png")
    link = root / "bird"
    link.symlink_to(outside, target_is_directory=True)
    with pytest.raises(BadInputError) as info:
        load_imagefolder(root, image_size=16, workers=1)
    assert str(link) in str(info.value) and "leaves the dataset tree" in str(info.value)


def test_nested_folder_symlink_out_of_tree(tmp_path):
    root = good_tree(tmp_path)
    outside = tmp_path / "elsewhere"
    write_image(outside / "a.png")
    link = root / "dog" / "more"
    link.symlink_to(outside, target_is_directory=True)
    with pytest.raises(BadInputError) as info:
        scan_tree(root)
    assert str(link) in str(info.value) and "leaves the dataset tree" in str(info.value)


def test_symlink_inside_tree_is_accepted(tmp_path):
    root = good_tree(tmp_path)
    (root / "dog" / "alias.png").symlink_to(root / "cat" / "img_000.png")
    ds = load_imagefolder(root, image_size=16, workers=1)
    assert "dog/alias.png" in ds.paths and len(ds) == 7


def test_dangling_symlink(tmp_path):
    root = good_tree(tmp_path)
    link = root / "cat" / "gone.png"
    link.symlink_to(root / "cat" / "never_existed.png")
    _refused(root, link, "cannot be read")


# ------------------------------------------------------------------------------ permissions
def _unreadable_for_us(path: Path) -> bool:
    try:
        path.read_bytes()
    except PermissionError:
        return True
    return False


def test_unreadable_file(tmp_path):
    root = good_tree(tmp_path)
    bad = root / "dog" / "img_001.png"
    bad.chmod(0)
    try:
        if not _unreadable_for_us(bad):
            pytest.skip("running with privileges that read a chmod 000 file (root)")
        msg = _refused(root, bad, "permission denied")
        assert "read access" in msg
    finally:
        bad.chmod(0o644)


def test_unreadable_file_simulated(tmp_path, monkeypatch):
    """The same refusal where chmod cannot deny (root): reading the file raises PermissionError."""
    root = good_tree(tmp_path)
    bad = root / "dog" / "img_001.png"
    real = Path.read_bytes

    def read_bytes(self):
        if self == bad:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    msg = _refused(root, bad, "permission denied")
    assert "read access" in msg


def test_unreadable_class_folder(tmp_path):
    root = good_tree(tmp_path)
    folder = root / "dog"
    folder.chmod(0)
    try:
        if os.access(folder, os.R_OK):
            pytest.skip("running with privileges that read a chmod 000 folder (root)")
        with pytest.raises(BadInputError) as info:
            scan_tree(root)
        assert str(folder) in str(info.value) and "permission denied" in str(info.value)
    finally:
        folder.chmod(0o755)


def test_unreadable_class_folder_simulated(tmp_path, monkeypatch):
    root = good_tree(tmp_path)
    folder = root / "dog"
    real = os.scandir

    def scandir(path="."):
        if Path(path) == folder:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(BadInputError) as info:
        scan_tree(root)
    assert str(folder) in str(info.value) and "permission denied" in str(info.value)
    assert "read access" in str(info.value)


# ------------------------------------------------------------------------------ skipped, not errors
def test_files_without_image_extension_are_skipped(tmp_path):
    root = good_tree(tmp_path)
    (root / "cat" / "notes.txt").write_text("labelled by hand")
    (root / "dog" / ".DS_Store").write_bytes(random.Random(64).randbytes(64))
    (root / "dog" / "labels.csv").write_text("a,b\n")
    (root / "README.md").write_text("a file at the root is not a class")
    ds = load_imagefolder(root, image_size=16, workers=1)
    assert len(ds) == 6 and ds.classes == ["cat", "dog"]
    assert not any(p.endswith((".txt", ".csv", ".DS_Store")) for p in ds.paths)
    assert {"cat/notes.txt", "dog/.DS_Store", "dog/labels.csv"} <= set(ds.skipped)


def test_skipped_files_do_not_change_the_fingerprint(tmp_path):
    root = good_tree(tmp_path)
    before = load_imagefolder(root, image_size=16, workers=1).fingerprint
    (root / "cat" / "notes.txt").write_text("x")
    assert load_imagefolder(root, image_size=16, workers=1).fingerprint == before


def test_upper_case_extension_is_an_image(tmp_path):
    root = good_tree(tmp_path)
    write_image(root / "cat" / "LOUD.PNG", seed=5)
    write_image(root / "dog" / "photo.JPeG", seed=6)
    ds = load_imagefolder(root, image_size=16, workers=1)
    assert "cat/LOUD.PNG" in ds.paths and "dog/photo.JPeG" in ds.paths
