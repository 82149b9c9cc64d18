"""Images of any mode and size load as 3 x S x S uint8 with the values a person would expect; odd file
names keep their relative paths; the sample order and the labels follow the documented rules; the
fingerprint changes with the data and only with the data."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bsd_audit.data.imagefolder import load_imagefolder
from input_helpers import write_image

S = 16


def _load(root: Path, size: int = S):
    return load_imagefolder(root, image_size=size, workers=2)


def _pixels(ds, rel: str) -> np.ndarray:
    """The decoded image of one file as H x W x 3 uint8."""
    return ds.images[ds.paths.index(rel)].permute(1, 2, 0).numpy()


def _save(im: Image.Image, path: Path, fmt: str = "PNG", **kw) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, fmt, **kw)


@pytest.fixture(scope="module")
def modes(tmp_path_factory):
    """One file per mode, in class 'm'; a plain class 'z' so the tree has two classes."""
    root = tmp_path_factory.mktemp("modes")
    m = root / "m"
    _save(Image.new("L", (S, S), 100), m / "l.png")
    _save(Image.new("RGB", (S, S), (10, 20, 30)), m / "rgb.png")
    rgba = Image.new("RGBA", (S, S), (255, 255, 255, 0))  # left half fully transparent white
    rgba.paste((10, 200, 30, 255), (S // 2, 0, S, S))  # right half opaque
    _save(rgba, m / "rgba.png")
    p = Image.new("P", (S, S), 0)
    p.putpalette([255, 255, 255, 0, 0, 255] + [0] * 762)  # index 0 white (transparent), 1 blue
    p.paste(1, (S // 2, 0, S, S))
    _save(p, m / "p.png", transparency=0)
    _save(Image.new("CMYK", (S, S), (0, 255, 255, 0)), m / "cmyk.jpg", "JPEG", quality=95)  # pure red
    ramp = np.tile(np.linspace(0, 65535, S).round().astype(np.uint16), (S, 1))
    _save(Image.fromarray(ramp), m / "ramp16.png")
    _save(Image.fromarray(np.full((S, S), 128 * 257, np.uint16)), m / "flat16.png")
    _save(Image.fromarray(np.full((S, S), 20 * 257, np.uint16)), m / "dark16.png")
    la = Image.new("LA", (S, S), (200, 255))
    la.paste((200, 0), (0, 0, S // 2, S))  # left half transparent
    _save(la, m / "la.png")
    one = Image.new("1", (S, S), 0)
    one.paste(1, (S // 2, 0, S, S))
    _save(one, m / "one.png")
    _save(Image.new("RGB", (S, S), (9, 99, 199)), m / "bmp.bmp", "BMP")
    _save(Image.new("RGB", (S, S), (50, 60, 70)), m / "tif.tif", "TIFF")
    _save(Image.new("RGB", (S, S), (50, 60, 70)), m / "webp.webp", "WEBP", lossless=True)
    write_image(root / "z" / "plain.png")
    return _load(root)


def test_all_modes_load_as_rgb_uint8(modes):
    assert modes.images.dtype == torch.uint8
    assert tuple(modes.images.shape) == (len(modes), 3, S, S)
    assert modes.classes == ["m", "z"]


def test_grey_and_rgb_exact(modes):
    assert (_pixels(modes, "m/l.png") == 100).all()
    assert (_pixels(modes, "m/rgb.png") == (10, 20, 30)).all()
    assert (_pixels(modes, "m/bmp.bmp") == (9, 99, 199)).all()
    assert (_pixels(modes, "m/tif.tif") == (50, 60, 70)).all()
    assert (_pixels(modes, "m/webp.webp") == (50, 60, 70)).all()


def test_transparent_pixels_become_black(modes):
    rgba = _pixels(modes, "m/rgba.png")
    assert (rgba[:, : S // 2] == 0).all()  # transparent white -> black, not white
    assert (rgba[:, S // 2:] == (10, 200, 30)).all()
    la = _pixels(modes, "m/la.png")
    assert (la[:, : S // 2] == 0).all() and (la[:, S // 2:] == 200).all()


def test_palette_with_transparency(modes):
    p = _pixels(modes, "m/p.png")
    assert (p[:, : S // 2] == 0).all()  # transparent palette index -> black
    assert (p[:, S // 2:] == (0, 0, 255)).all()


def test_cmyk_jpeg(modes):
    px = _pixels(modes, "m/cmyk.jpg").astype(int)
    assert np.abs(px - (255, 0, 0)).max() <= 8  # red, within JPEG error


def test_one_bit(modes):
    px = _pixels(modes, "m/one.png")
    assert (px[:, : S // 2] == 0).all() and (px[:, S // 2:] == 255).all()


def test_16_bit_ramp_spans_0_to_255(modes):
    px = _pixels(modes, "m/ramp16.png")
    row = px[0, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255  # full range, not clipped to 255
    assert (np.diff(row) > 0).all()  # strictly increasing along the ramp
    assert (px[..., 0] == px[..., 1]).all() and (px[..., 1] == px[..., 2]).all()


def test_16_bit_keeps_its_brightness(modes):
    """A 16-bit image has a fixed full scale: flat mid-grey stays mid-grey (not black) and a dark
    image stays dark (not stretched to full contrast), as the same picture saved in 8 bits would."""
    assert (_pixels(modes, "m/flat16.png") == 128).all()
    assert (_pixels(modes, "m/dark16.png") == 20).all()


@pytest.mark.parametrize("w,h", [(7, 5), (300, 40), (16, 16), (1, 1), (33, 64)])
def test_any_size_is_resized(tmp_path, w, h):
    root = tmp_path / "data"
    _save(Image.new("RGB", (w, h), (40, 80, 120)), root / "a" / "x.png")
    write_image(root / "b" / "y.png", (5, 9))
    ds = _load(root)
    assert tuple(ds.images.shape) == (2, 3, S, S)
    assert (_pixels(ds, "a/x.png") == (40, 80, 120)).all()  # a flat colour survives any resize


def test_odd_file_names_keep_their_relative_paths(tmp_path):
    names = {
        "class with space": ["file with spaces.png", "ünïcödé ✓.png", "名前.jpg", "img[1] (copy).png"],
        "ñandú": ["#hash%percent&amp.png", ".hidden.png", "a'quote\".png"],
    }
    root = tmp_path / "data"
    k = 0
    for cls, files in names.items():
        for f in files:
            write_image(root / cls / f, seed=k)
            k += 1
    ds = _load(root)
    expected = sorted(f"{c}/{f}" for c, fs in names.items() for f in fs)
    assert ds.paths == expected
    for rel in ds.paths:  # every path maps back to its file, byte for byte
        assert (root / rel).is_file()
    assert ds.classes == sorted(names)


def test_sample_order_and_labels(tmp_path):
    """Samples are the sorted relative paths (sub-folders included); labels index the sorted class
    folder names (byte order, as torchvision: 'B' < 'a' < 'a b'), whatever the sample order."""
    root = tmp_path / "data"
    files = ["a/2.png", "a/10.png", "a/sub/0.png", "B/z.png", "B/a.png", "a b/x.png", "a b/y.png"]
    for i, rel in enumerate(files):
        write_image(root / rel, seed=i)
    ds = _load(root)
    assert ds.classes == ["B", "a", "a b"]
    assert ds.paths == sorted(files)
    assert ds.paths[0] == "B/a.png" and ds.paths.index("a b/x.png") < ds.paths.index("a/10.png")
    assert ds.labels.tolist() == [ds.classes.index(p.split("/")[0]) for p in ds.paths]
    assert ds.labels.dtype == torch.int64


def test_order_does_not_depend_on_creation_order(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    files = [f"{c}/{i}.png" for c in ("x", "y") for i in range(5)]
    for i, rel in enumerate(files):
        write_image(a / rel, seed=i)
    for i, rel in reversed(list(enumerate(files))):
        write_image(b / rel, seed=i)
    da, db = _load(a), _load(b)
    assert da.paths == db.paths and da.fingerprint == db.fingerprint
    assert torch.equal(da.images, db.images) and torch.equal(da.labels, db.labels)


# ------------------------------------------------------------------------------ fingerprint
@pytest.fixture
def bmp_tree(tmp_path) -> Path:
    """BMP files: uncompressed, so flipping one pixel byte leaves a valid image."""
    root = tmp_path / "data"
    for c in ("cat", "dog"):
        for i in range(3):
            write_image(root / c / f"{i}.bmp", seed=i + (10 if c == "dog" else 0))
    return root


def test_fingerprint_is_stable(bmp_tree, tmp_path):
    fp = _load(bmp_tree).fingerprint
    assert _load(bmp_tree).fingerprint == fp  # same data, same fingerprint
    f = bmp_tree / "cat" / "1.bmp"
    f.touch()  # a new mtime is not a change of data
    assert _load(bmp_tree).fingerprint == fp
    moved = tmp_path / "elsewhere" / "copy"
    shutil.copytree(bmp_tree, moved)  # it covers relative paths, so a moved copy matches
    assert _load(moved).fingerprint == fp
    assert _load(bmp_tree, size=24).fingerprint == fp  # files, not the working resolution


def test_fingerprint_changes_with_one_byte(bmp_tree):
    fp = _load(bmp_tree).fingerprint
    f = bmp_tree / "dog" / "2.bmp"
    data = bytearray(f.read_bytes())
    data[-1] ^= 0x01  # one bit of one pixel
    f.write_bytes(bytes(data))
    assert _load(bmp_tree).fingerprint != fp


def test_fingerprint_changes_with_a_rename(bmp_tree):
    fp = _load(bmp_tree).fingerprint
    (bmp_tree / "cat" / "0.bmp").rename(bmp_tree / "cat" / "0b.bmp")
    assert _load(bmp_tree).fingerprint != fp


def test_fingerprint_changes_when_a_file_moves_class(bmp_tree):
    fp = _load(bmp_tree).fingerprint
    (bmp_tree / "cat" / "0.bmp").rename(bmp_tree / "dog" / "0.bmp")  # same bytes, new label
    assert _load(bmp_tree).fingerprint != fp


def test_fingerprint_changes_when_a_file_is_added_or_removed(bmp_tree):
    fp = _load(bmp_tree).fingerprint
    write_image(bmp_tree / "cat" / "9.bmp", seed=99)
    fp_added = _load(bmp_tree).fingerprint
    assert fp_added != fp
    (bmp_tree / "cat" / "9.bmp").unlink()
    assert _load(bmp_tree).fingerprint == fp  # back to the same files, back to the same fingerprint
