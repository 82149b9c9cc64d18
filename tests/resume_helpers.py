"""Helpers for the resume and divergence tests (test_split_resumes, test_training_diverges): tiny
settings and a bit-for-bit comparison of two split artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from conftest import TINY_OVERRIDES, make_tiny_poisoned

# one thread: on a busy 2-core machine two threads make these tiny runs many times slower
OVERRIDES = {**TINY_OVERRIDES, "threads": 1}
SETS = [a for k, v in OVERRIDES.items() for a in ("--set", f"{k}={v}")]


def datasets(path: Path) -> dict[str, np.ndarray]:
    """Every dataset of an artifact: pools, scores, history, target, weights, samples."""
    out = {}
    with h5py.File(path) as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def assert_same_datasets(a: Path, b: Path, *required: str) -> None:
    """Every dataset of two artifacts equal, bit for bit (attributes such as the creation time and the
    summary's wall time may differ); each of ``required`` (a name or a group prefix) is among them."""
    da, db = datasets(a), datasets(b)
    assert da.keys() == db.keys()
    missing = [r for r in required if not any(k == r or k.startswith(r + "/") for k in da)]
    assert not missing, f"not in {a}: {missing}"
    differ = [k for k in da if not np.array_equal(da[k], db[k], equal_nan=da[k].dtype.kind == "f")]
    assert not differ, f"{len(differ)} dataset(s) differ, first: {differ[:5]}"


def assert_same_split(a: Path, b: Path) -> None:
    """Same pools, scores, history, target and weights, bit for bit."""
    assert_same_datasets(a, b, "weights/main", "pools/clean", "scores/indicator")


def checkpoint_attrs(path: Path) -> dict:
    """The phase and the epochs completed that a split checkpoint records."""
    with h5py.File(path) as f:
        return {"epoch": int(f.attrs["epoch"]), "phase": json.loads(f.attrs["meta"])["phase"]}


class Interrupt(Exception):
    """Raised by stop_at's hook: stands for a kill right after an epoch's checkpoint reached the disk."""


def stop_at(phase: str, epoch: int):
    """An ``after_epoch`` hook for split that interrupts the run after ``epoch`` of ``phase``."""
    def hook(p, e):
        if (p, e) == (phase, epoch):
            raise Interrupt
    return hook


def straight_split(base: Path, truth: bool = True) -> dict:
    """The tiny poisoned set under ``base`` and a split of it that was never interrupted (with the
    ground truth recorded unless ``truth`` is false): the reference the interrupted runs must match."""
    from bsd_audit import api
    from bsd_audit.config import resolve_config

    data, manifest, straight = base / "data", base / "data_manifest.json", base / "straight.h5"
    make_tiny_poisoned(data)
    summary = api.split(data, straight, resolve_config("cpu", OVERRIDES), truth_manifest=manifest if truth else None).to_dict()
    return {"data": data, "manifest": manifest, "straight": straight, "base": base, "summary": summary}
