"""The disk store (DiskImages over the decode cache's file) hands the training loops exactly what the
in-memory tensor does, batch for batch, so a split with --data-store disk is the split of memory."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import bsd_audit.data.store as store
from bsd_audit import api
from bsd_audit.cli import app
from bsd_audit.config import resolve_config
from bsd_audit.data.imagefolder import load_imagefolder
from bsd_audit.data.store import DiskImages
from conftest import TINY_OVERRIDES
from resume_helpers import SETS, Interrupt, assert_same_split, stop_at


@pytest.fixture
def both(tiny_poisoned, tmp_path):
    data, _, _ = tiny_poisoned
    mem = load_imagefolder(data, 16, store="memory", workers=2)
    disk = load_imagefolder(data, 16, store="disk", cache_dir=tmp_path / "cache", workers=2)
    return mem, disk


def test_batches_are_identical(both):
    mem, disk = both
    assert isinstance(disk.images, DiskImages) and disk.store == "disk" and mem.store == "memory"
    assert disk.images.shape == mem.images.shape and len(disk.images) == len(mem)
    assert disk.fingerprint == mem.fingerprint
    gen = torch.Generator().manual_seed(0)
    for size in (1, 7, 32, len(mem)):  # shuffled batches as Batches draws them, and a whole pass
        idx = torch.randperm(len(mem), generator=gen)[:size]
        got = disk.images[idx]
        assert got.dtype == torch.uint8 and got.device == mem.images.device
        assert torch.equal(got, mem.images[idx])
    odd = torch.tensor([5, 5, 0, len(mem) - 1, -1, 6, 7, 8, 3])  # repeats, negatives, runs, out of order
    assert torch.equal(disk.images[odd], mem.images[odd])
    assert torch.equal(disk.images[torch.arange(len(mem))], mem.images)
    assert torch.equal(disk.images[3], mem.images[3]) and torch.equal(disk.images[10:40], mem.images[10:40])
    assert disk.images[torch.tensor([], dtype=torch.long)].shape == (0, 3, 16, 16)
    assert torch.equal(torch.cat(list(disk.images.shards(17))), mem.images)
    with pytest.raises(IndexError):
        disk.images[torch.tensor([len(mem)])]


def test_channel_stats_are_those_of_the_whole_tensor(both):
    mem, disk = both
    x = mem.images.double().div(255)
    want_mean, want_std = x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3))
    for ds in both:
        mean, std = ds.channel_stats()
        assert np.allclose(mean, want_mean, rtol=0, atol=1e-9) and np.allclose(std, want_std, rtol=0, atol=1e-9)
    assert mem.channel_stats() == disk.channel_stats()  # exact sums: the shard size does not matter


def test_split_with_the_disk_store_is_the_split_of_memory(tiny_poisoned, tmp_path):
    data, _, _ = tiny_poisoned
    memory = resolve_config("cpu", {**TINY_OVERRIDES, "data_store": "memory"})
    api.split(data, tmp_path / "memory.h5", memory)
    res = CliRunner().invoke(app, ["split", str(data), "--out", str(tmp_path / "disk.h5"), "--preset", "cpu",
                                   "--data-store", "disk", "--json", *SETS])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["clean_size"] > 0
    with h5py.File(tmp_path / "disk.h5") as f:
        assert json.loads(f.attrs["config"])["data_store"] == "disk"
    assert_same_split(tmp_path / "memory.h5", tmp_path / "disk.h5")  # pools, scores, history, every weight

    # stopped with the data in memory (say, memory ran short), continued from its checkpoint on disk
    out = tmp_path / "resumed.h5"
    with pytest.raises(Interrupt):
        api.split(data, out, memory, after_epoch=stop_at("bsd", 2))
    summary = api.split(data, out, resolve_config("cpu", {**TINY_OVERRIDES, "data_store": "disk"})).to_dict()
    assert summary["resumed_from"]["phase"] == "bsd" and summary["resumed_from"]["settings_changed"] == {}
    assert_same_split(tmp_path / "memory.h5", out)


def test_auto_picks_disk_when_the_data_would_take_over_half_the_memory(tiny_poisoned, monkeypatch):
    data, _, _ = tiny_poisoned
    nbytes = 120 * 3 * 16 * 16
    monkeypatch.setattr(store, "host_memory_available", lambda: 2 * nbytes - 1)
    logs: list[str] = []
    ds = load_imagefolder(data, 16, store="auto", log=logs.append)
    assert ds.store == "disk" and isinstance(ds.images, DiskImages)
    assert any(m.startswith("data store: disk (auto: decoded data") for m in logs), logs
    monkeypatch.setattr(store, "host_memory_available", lambda: 2 * nbytes)
    assert load_imagefolder(data, 16, store="auto").store == "memory"
    assert store.choose_store("memory", 10**15, "cpu")[0] == "memory"  # forced either way
    assert store.choose_store("disk", 1, "cpu")[0] == "disk"


def test_unknown_store_is_refused(tmp_path):
    from bsd_audit.errors import UsageError
    with pytest.raises(UsageError, match="data_store 'ssd': Input should be 'auto', 'memory' or 'disk'"):
        resolve_config("cpu", {"data_store": "ssd"})
