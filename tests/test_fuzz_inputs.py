"""Hostile input, generated: every image file and every artifact either loads correctly or fails with
the tool's own error (BadInputError, naming the file) -- never a crash, a hang or a stray exception.

Bounded budgets (max_examples) keep this in the default run; `--run-slow` is not needed. The number
of inputs tried is printed by pytest's `-s` output through hypothesis's statistics (`--hypothesis-show-statistics`).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from bsd_audit.data.imagefolder import decode_image, load_imagefolder
from bsd_audit.errors import BadInputError
from bsd_audit.artifacts.h5 import open_artifact
from bsd_audit.artifacts.model import load_model
from bsd_audit.artifacts.split import read_split

SIZE = 8
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                         HealthCheck.function_scoped_fixture])


def _encoded(mode: str, w: int, h: int, fmt: str, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    channels = {"L": 1, "RGB": 3, "RGBA": 4, "CMYK": 4, "P": 1, "I;16": 1, "1": 1, "LA": 2}[mode]
    if mode == "I;16":
        img = Image.fromarray(rng.integers(0, 65535, (h, w), dtype=np.uint16))
    elif mode == "1":
        img = Image.fromarray(rng.integers(0, 2, (h, w), dtype=np.uint8) * 255).convert("1")
    else:
        arr = rng.integers(0, 256, (h, w, channels) if channels > 1 else (h, w), dtype=np.uint8)
        base = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels]
        img = Image.fromarray(arr, base)
        if mode != base:
            img = img.convert(mode)
    buf = io.BytesIO()
    try:
        img.save(buf, fmt)
    except (OSError, ValueError, KeyError):  # a format that cannot hold this mode: save as PNG
        buf = io.BytesIO()
        img.convert("RGB").save(buf, "PNG")
    return buf.getvalue()


def _check(data: bytes, name: str = "x.png") -> None:
    try:
        arr = decode_image(data, name, SIZE, 10_000)
    except BadInputError as exc:
        assert name in str(exc)
        return
    assert arr.shape == (SIZE, SIZE, 3) and arr.dtype == np.uint8


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes_load_or_fail_cleanly(data):
    _check(data)


@FUZZ
@given(mode=st.sampled_from(["L", "RGB", "RGBA", "CMYK", "P", "I;16", "1", "LA"]),
       w=st.integers(1, 40), h=st.integers(1, 40), fmt=st.sampled_from(["PNG", "JPEG", "BMP", "TIFF", "WEBP", "GIF"]),
       seed=st.integers(0, 10_000), cut=st.floats(0.0, 1.0), flip=st.integers(0, 4096))
def test_real_images_truncated_or_bit_flipped_load_or_fail_cleanly(mode, w, h, fmt, seed, cut, flip):
    data = _encoded(mode, w, h, fmt, seed)
    _check(data)  # the whole file decodes or is refused (e.g. a mode a format cannot carry)
    _check(data[: int(len(data) * cut)])
    if data:
        b = bytearray(data)
        b[flip % len(b)] ^= 0xFF
        _check(bytes(b))


@FUZZ
@given(w=st.integers(1, 1 << 20), h=st.integers(1, 1 << 20))
def test_huge_declared_sizes_are_refused_before_decoding(w, h):
    # a PNG header that declares w x h: the pixel limit must refuse it without allocating anything
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    if w * h > 10_000:
        with pytest.raises(BadInputError, match="bomb.png: .*(over the limit|decompression bomb)"):
            decode_image(data, "bomb.png", SIZE, 10_000)
    else:
        _check(data, "bomb.png")


NAMES = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\\0"),
                min_size=1, max_size=60).filter(lambda s: s not in (".", "..") and len(s.encode()) < 200)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(NAMES, min_size=2, max_size=4, unique=True))
def test_odd_file_names_load_in_sorted_order(tmp_path_factory, names):
    root = tmp_path_factory.mktemp("names")
    for i, name in enumerate(names):
        folder = root / ("a" if i % 2 else "b")
        folder.mkdir(exist_ok=True)
        stem = name if not name.startswith(".") else "x" + name
        Image.fromarray(np.full((4, 4, 3), i * 30, np.uint8)).save(folder / f"{stem} {i}.png")
    ds = load_imagefolder(root, SIZE, workers=1)
    assert ds.paths == sorted(ds.paths) and len(ds) == len(names)
    assert all((root / p).is_file() for p in ds.paths)


@pytest.fixture(scope="module")
def a_split_artifact(tmp_path_factory):
    from report_helpers import make_split_artifact
    artifact, _, _ = make_split_artifact(tmp_path_factory.mktemp("fuzz_split"), with_verdict=True)
    return artifact.read_bytes()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.floats(0.0, 1.0), flips=st.lists(st.integers(0, 1 << 30), max_size=8))
def test_damaged_artifacts_load_or_fail_cleanly(tmp_path_factory, a_split_artifact, cut, flips):
    b = bytearray(a_split_artifact[: max(1, int(len(a_split_artifact) * cut))])
    for pos in flips:
        b[pos % len(b)] ^= 0xA5
    path = Path(tmp_path_factory.mktemp("dmg")) / "split.h5"
    path.write_bytes(bytes(b))
    for reader in (read_split, lambda p: open_artifact(p).close(), load_model):
        try:
            reader(path)
        except BadInputError as exc:
            assert "split.h5" in str(exc)
        except (OSError, RuntimeError, ValueError, KeyError, TypeError) as exc:  # pragma: no cover - a failure
            pytest.fail(f"{reader} let a raw {type(exc).__name__} escape: {exc}")
