"""A decode that fails, is interrupted or is killed leaves no cache entry behind; a bad image keeps
its error naming the file; a damaged cache file is decoded again; a cache folder that cannot be
written costs one warning, never the audit."""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap

import pytest
import torch

import bsd_audit.data.cache as cache
import bsd_audit.data.imagefolder as imagefolder
from bsd_audit.data.imagefolder import load_imagefolder
from bsd_audit.errors import BadInputError


@pytest.fixture(autouse=True)
def settled(monkeypatch):
    monkeypatch.setattr(cache, "_RACY_S", 0.0)


def _left(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize("store", ["memory", "disk"])
def test_corrupt_image_names_the_file_and_leaves_no_cache(tiny_poisoned, tmp_path, store):
    data, _, _ = tiny_poisoned
    bad = data / "bee" / "bee_017.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + random.Random(300).randbytes(300))
    folder = tmp_path / "cache"
    with pytest.raises(BadInputError) as info:
        load_imagefolder(data, 16, store=store, cache_dir=folder, workers=2)
    assert str(bad) in str(info.value) and "Remove it or replace it" in str(info.value)
    assert _left(folder) == []


def test_interrupted_decode_leaves_no_cache(tiny_poisoned, tmp_path, monkeypatch):
    data, _, _ = tiny_poisoned
    real, seen = imagefolder._read_one, []

    def interrupted(args):
        seen.append(args[1])
        if len(seen) == 50:
            raise KeyboardInterrupt
        return real(args)

    monkeypatch.setattr(imagefolder, "_read_one", interrupted)
    folder = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):
        load_imagefolder(data, 16, store="disk", cache_dir=folder, workers=1)
    assert _left(folder) == []


def test_killed_decode_leaves_nothing_that_looks_complete(tiny_poisoned, tmp_path):
    data, _, _ = tiny_poisoned
    folder = tmp_path / "cache"
    child = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        import bsd_audit.data.cache as cache
        import bsd_audit.data.imagefolder as imagefolder
        cache._RACY_S = 0.0
        real, seen = imagefolder._read_one, []
        def killed(args):
            seen.append(1)
            if len(seen) == 90:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(args)
        imagefolder._read_one = killed
        imagefolder.load_imagefolder(Path({str(data)!r}), 16, store="disk", cache_dir=Path({str(folder)!r}), workers=1)
    """)
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()
    assert list(folder.glob("*.tmp")), _left(folder)  # killed while writing its pixel file
    assert not list(folder.glob("*.json")) and not list(folder.glob("*.npy"))
    ds = load_imagefolder(data, 16, store="disk", cache_dir=folder)  # the next run decodes and caches
    assert torch.equal(ds.images[torch.arange(len(ds))], load_imagefolder(data, 16).images)
    assert len(list(folder.glob("*.json"))) == 1


def test_damaged_cache_file_is_decoded_again(tiny_poisoned, tmp_path):
    data, _, _ = tiny_poisoned
    folder = tmp_path / "cache"
    want = load_imagefolder(data, 16, cache_dir=folder)
    (npy,) = folder.glob("*.npy")
    with open(npy, "r+b") as fh:
        fh.truncate(npy.stat().st_size - 100)
    again = load_imagefolder(data, 16, store="disk", cache_dir=folder)
    assert torch.equal(again.images[torch.arange(len(want))], want.images)
    assert npy.stat().st_size == 128 + want.images.numel()  # replaced by a whole one


@pytest.mark.parametrize("store", ["memory", "disk"])
def test_unwritable_cache_folder_falls_back_with_one_warning(tiny_poisoned, tmp_path, store):
    data, _, _ = tiny_poisoned
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    logs: list[str] = []
    ds = load_imagefolder(data, 16, store=store, cache_dir=blocker / "cache", log=logs.append)
    warnings = [m for m in logs if m.startswith("warning")]
    assert len(warnings) == 1 and str(blocker / "cache") in warnings[0] and "--no-cache" in warnings[0]
    assert ds.store == store
    assert torch.equal(ds.images[torch.arange(len(ds))], load_imagefolder(data, 16).images)
