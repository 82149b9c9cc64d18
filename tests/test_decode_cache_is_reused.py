"""Decoded images are cached between commands: a second load opens no image file, and any change to
a file (size, mtime, or content behind a restored mtime) or to the decode settings decodes again."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch
from PIL import Image

import bsd_audit.data.cache as cache
import bsd_audit.data.imagefolder as imagefolder
from bsd_audit.data.cache import resolve_cache_dir
from bsd_audit.data.imagefolder import load_imagefolder


@pytest.fixture
def settled(monkeypatch):
    """Files just written count as settled (the racy check has its own test below)."""
    monkeypatch.setattr(cache, "_RACY_S", 0.0)


def _no_decoding(monkeypatch):
    def refuse(args):
        raise AssertionError(f"{args[1]} was opened again")
    monkeypatch.setattr(imagefolder, "_read_one", refuse)


def _entries(folder):
    return sorted(p.name for p in folder.glob("*.json"))


@pytest.mark.parametrize("store", ["memory", "disk"])
def test_second_load_reuses_pixels_and_fingerprint(tiny_poisoned, tmp_path, monkeypatch, settled, store):
    data, _, _ = tiny_poisoned
    folder = tmp_path / "cache"
    first = load_imagefolder(data, 16, store=store, cache_dir=folder, workers=2)
    assert len(_entries(folder)) == 1
    _no_decoding(monkeypatch)
    logs: list[str] = []
    for again_store in ("memory", "disk"):
        again = load_imagefolder(data, 16, store=again_store, cache_dir=folder, log=logs.append)
        assert again.fingerprint == first.fingerprint and again.paths == first.paths
        assert torch.equal(again.images[torch.arange(len(first))], first.images[torch.arange(len(first))])
    assert sum("read from the cache" in m for m in logs) == 2


def test_a_changed_file_is_decoded_again(tiny_poisoned, tmp_path, settled):
    data, _, _ = tiny_poisoned
    folder = tmp_path / "cache"
    bmp = data / "ant" / "zz.bmp"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(bmp)
    base = load_imagefolder(data, 16, cache_dir=folder)
    i = base.paths.index("ant/zz.bmp")
    assert int(base.images[i].max()) == 0

    # content and size the same as before the write, only the mtime moved: a new entry, same result
    os.utime(bmp, ns=(bmp.stat().st_atime_ns, bmp.stat().st_mtime_ns + 10**9))
    again = load_imagefolder(data, 16, cache_dir=folder)
    assert len(_entries(folder)) == 1  # the root's older entry was dropped
    assert again.fingerprint == base.fingerprint

    # other pixels, same size (BMP), mtime put back as it was: the ctime still gives it away
    stamp = bmp.stat().st_mtime_ns
    time.sleep(0.05)  # past the file system's time-stamp granularity
    Image.fromarray(np.full((16, 16, 3), 255, np.uint8)).save(bmp)
    os.utime(bmp, ns=(stamp, stamp))
    changed = load_imagefolder(data, 16, cache_dir=folder)
    assert changed.fingerprint != base.fingerprint and int(changed.images[i].min()) == 255

    # a file of another size
    Image.fromarray(np.full((20, 20, 3), 7, np.uint8)).save(bmp)
    resized = load_imagefolder(data, 16, cache_dir=folder)
    assert resized.fingerprint not in (base.fingerprint, changed.fingerprint)
    assert int(resized.images[i].max()) == 7


def test_other_decode_settings_are_other_entries(tiny_poisoned, tmp_path, monkeypatch, settled):
    data, _, _ = tiny_poisoned
    folder = tmp_path / "cache"
    small = load_imagefolder(data, 16, cache_dir=folder)
    big = load_imagefolder(data, 24, cache_dir=folder)
    assert big.images.shape[-1] == 24 and big.fingerprint == small.fingerprint
    limited = load_imagefolder(data, 24, cache_dir=folder, max_image_pixels=10_000)
    assert torch.equal(limited.images, big.images)
    _no_decoding(monkeypatch)
    with pytest.raises(AssertionError, match="opened again"):  # only the root's newest entry is kept
        load_imagefolder(data, 16, cache_dir=folder)


def test_files_changed_seconds_ago_are_not_cached(tiny_poisoned, tmp_path):
    data, _, _ = tiny_poisoned  # just written
    folder = tmp_path / "cache"
    logs: list[str] = []
    for store in ("memory", "disk"):
        load_imagefolder(data, 16, store=store, cache_dir=folder, log=logs.append)
    assert not list(folder.glob("*.json")) and not list(folder.glob("*.npy")) and not list(folder.glob("*.tmp"))
    assert sum("decode cache not written" in m for m in logs) == 2


def test_cache_location_and_off(monkeypatch, tmp_path):
    monkeypatch.setenv("BSD_AUDIT_CACHE_DIR", str(tmp_path / "env"))
    assert resolve_cache_dir("") == tmp_path / "env"
    assert resolve_cache_dir(str(tmp_path / "cfg")) == tmp_path / "cfg"
    assert resolve_cache_dir("off") is None and resolve_cache_dir("OFF") is None
    monkeypatch.delenv("BSD_AUDIT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_cache_dir("") == tmp_path / "xdg" / "bsd-audit"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_cache_dir("") == tmp_path / "home" / ".cache" / "bsd-audit"


def test_no_cache_flag_writes_nothing(tiny_poisoned, tmp_path, monkeypatch, settled):
    from typer.testing import CliRunner
    from bsd_audit.cli import app
    from conftest import TINY_OVERRIDES

    data, _, _ = tiny_poisoned
    monkeypatch.setenv("BSD_AUDIT_CACHE_DIR", str(tmp_path / "cache"))
    sets = [a for k, v in {**TINY_OVERRIDES, "altruistic_warmup_epochs": 1}.items() for a in ("--set", f"{k}={v}")]
    args = ["detect-target", str(data), "--out", str(tmp_path / "t.h5"), "--preset", "cpu", "--quiet", *sets]
    assert CliRunner().invoke(app, args + ["--no-cache"]).exit_code == 0
    assert not (tmp_path / "cache").exists()
    assert CliRunner().invoke(app, args).exit_code == 0
    assert len(_entries(tmp_path / "cache")) == 1
