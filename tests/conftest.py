"""Shared fixtures: tiny generated datasets (tests never need ../shared), and the --run-slow flag."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def pytest_configure(config):
    """The decode cache goes to a folder of this session's, never the user's ~/.cache (set before any
    test or fixture runs, for child processes too; restored at the end)."""
    config._cache_env = os.environ.get("BSD_AUDIT_CACHE_DIR")
    config._cache_dir = tempfile.mkdtemp(prefix="bsd-audit-test-cache-")
    os.environ["BSD_AUDIT_CACHE_DIR"] = config._cache_dir


def pytest_unconfigure(config):
    if not hasattr(config, "_cache_dir"):
        return
    shutil.rmtree(config._cache_dir, ignore_errors=True)
    if config._cache_env is None:
        os.environ.pop("BSD_AUDIT_CACHE_DIR", None)
    else:
        os.environ["BSD_AUDIT_CACHE_DIR"] = config._cache_env


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False, help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str):
    """A script of benchmarks/ as a module (the folder is no package): on sys.path while it loads,
    since the scripts import their siblings, and in sys.modules, where its dataclasses look it up."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCHMARKS))


def make_tiny_poisoned(root: Path, classes=("ant", "bee", "cat"), per_class=40, n_poison=8, size=16,
                       target="cat", seed=0) -> dict:
    """A tiny ImageFolder whose classes differ by colour and texture, with ``n_poison`` images of
    the other classes stamped with a white 3x3 corner patch and relabelled ``target``.
    Returns a manifest in the benchmark builder's format (paths relative to root)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 215, size=(len(classes), 3))
    poisoned = []
    t = classes.index(target)
    sources = [(c, i) for c in range(len(classes)) if c != t for i in range(per_class)]
    chosen = set(map(tuple, np.array(sources)[rng.choice(len(sources), n_poison, replace=False)].tolist()))
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
    for c, name in enumerate(classes):
        for i in range(per_class):
            img = np.clip(base[c] + rng.normal(0, 30, size=(size, size, 3)), 0, 255).astype(np.uint8)
            img[:, :: 2 + c] = np.clip(img[:, :: 2 + c].astype(int) + 40, 0, 255)  # class texture: stripes
            label = name
            if (c, i) in chosen:
                img[-3:, -3:] = 255
                label = target
            rel = f"{label}/{name}_{i:03d}.png"
            Image.fromarray(img).save(root / rel)
            if (c, i) in chosen:
                poisoned.append(rel)
    manifest = {"schema": 1, "attack": "badnets", "target": target, "classes": list(classes),
                "poisoned": sorted(poisoned), "num_poisoned": len(poisoned)}
    (root.parent / f"{root.name}_manifest.json").write_text(json.dumps(manifest))
    return manifest


@pytest.fixture
def tiny_poisoned(tmp_path):
    root = tmp_path / "data"
    manifest = make_tiny_poisoned(root)
    return root, tmp_path / "data_manifest.json", manifest


TINY_OVERRIDES = dict(device="cpu", arch="fastnet", width=8, image_size=16, altruistic_warmup_epochs=6,
                      altruistic_batch_size=32, warmup_batch_size=32, T1=3, init_fixed_epochs=1, T2=6, T3=7,
                      mixmatch_iterations=4, mixmatch_batch_size=16, mixmatch_rampup=7, eval_batch_size=64,
                      isolation_share=0.05, holdout_epochs=3, threads=1)  # tiny tensors: one thread is faster, and fair under load


def make_tiny_test_sets(root: Path, classes=("ant", "bee", "cat"), per_class=15, target="cat", seed=7) -> tuple[Path, Path]:
    """A clean test ImageFolder drawn like make_tiny_poisoned's, and its triggered twin (the same
    images with the corner patch, under their TRUE class, the target's folder left out)."""
    clean = root / "test"
    make_tiny_poisoned(clean, classes, per_class, n_poison=0, target=target, seed=seed)
    trig = root / "test_triggered"
    for path in sorted(clean.rglob("*.png")):
        if path.parent.name == target:
            continue
        img = np.array(Image.open(path))
        img[-3:, -3:] = 255
        (trig / path.parent.name).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(trig / path.parent.name / path.name)
    return clean, trig


@pytest.fixture(scope="session")
def tiny_split(tmp_path_factory):
    """The tiny poisoned set, its test sets, and a finished split of it (made once per session)."""
    from bsd_audit import api
    from bsd_audit.config import resolve_config

    base = tmp_path_factory.mktemp("tiny_split")
    data = base / "data"
    make_tiny_poisoned(data)
    test, triggered = make_tiny_test_sets(base)
    cfg = resolve_config("cpu", TINY_OVERRIDES)
    split = base / "split.h5"
    api.split(data, split, cfg, truth_manifest=base / "data_manifest.json")
    return {"data": data, "manifest": base / "data_manifest.json", "split": split, "test": test,
            "triggered": triggered, "base": base}
