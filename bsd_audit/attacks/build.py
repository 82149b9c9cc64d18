"""Build a poisoned copy of an ImageFolder dataset (see the package docstring for layout and manifest)."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from . import triggers

ATTACKS = ("badnets", "blended", "wanet", "sig", "badnets_all2all")

DEFAULT_PARAMS: dict[str, dict[str, float]] = {
    "badnets": {"patch_size": 3, "patch_share": 0.0},
    "blended": {"alpha": 0.2, "pattern_size": 0},
    "wanet": {"k": 4, "s": 0.5, "cross_ratio": 2},
    "sig": {"delta": 20, "f": 6},
    "badnets_all2all": {"patch_size": 3},
}

# Parameters that must be whole numbers; the rest may be any real number.
_INT_PARAMS = {"patch_size", "k", "pattern_size"}
# Blended's pattern on a source whose images differ in size: drawn at this side, resized to each image
MIXED_SIZES_PATTERN = 224

# Clean-label attacks poison samples of the target class and keep their labels.
_CLEAN_LABEL = {"sig"}

# The same extensions torchvision's ImageFolder accepts, so the builder sees what a loader would.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

SCHEMA_VERSION = 1

# Separate random streams, so e.g. changing the cross ratio does not change which samples are poisoned.
_STREAM_NAMES, _STREAM_POISON, _STREAM_CROSS, _STREAM_CROSS_NOISE = range(4)


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream])


def _resolve_params(attack: str, params: dict | None) -> dict:
    resolved = dict(DEFAULT_PARAMS[attack])
    for key, value in (params or {}).items():
        if key not in resolved:
            raise ValueError(
                f"unknown parameter {key!r} for attack {attack!r}; allowed: {', '.join(sorted(resolved))}"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"parameter {key!r} must be a finite number, got {value!r}")
        if key in _INT_PARAMS:
            if value != int(value):
                raise ValueError(f"parameter {key!r} must be a whole number, got {value!r}")
            value = int(value)
        resolved[key] = value
    if not 0 <= resolved.get("patch_share", 0.0) < 1:
        raise ValueError(f"parameter 'patch_share' is a share of the short side in [0, 1), got {resolved['patch_share']}")
    if resolved.get("cross_ratio", 0) < 0:
        raise ValueError(f"parameter 'cross_ratio' must be non-negative, got {resolved['cross_ratio']}")
    return resolved


def _make_trigger(attack: str, params: dict, seed: int) -> Callable[..., np.ndarray]:
    if attack in ("badnets", "badnets_all2all"):
        size, share = params["patch_size"], params.get("patch_share", 0.0)
        return lambda img: triggers.badnets(img, patch_size=size, patch_share=share)
    if attack == "blended":
        return triggers.Blended(alpha=params["alpha"], seed=seed, pattern_size=params["pattern_size"])
    if attack == "wanet":
        return triggers.WaNet(k=params["k"], s=params["s"], seed=seed)
    if attack == "sig":
        delta, f = params["delta"], params["f"]
        return lambda img: triggers.sig(img, delta=delta, f=f)
    raise AssertionError(attack)


def _mixed_sizes(paths: list[Path]) -> bool:
    """Whether the images differ in (width, height); reads headers only, and stops at the first that differs."""
    first = None
    for path in paths:
        with Image.open(path) as im:
            if first is None:
                first = im.size
            elif im.size != first:
                return True
    return False


def _list_images(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def _class_dirs(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def _save_png(arr: np.ndarray, path: Path) -> None:
    Image.fromarray(arr, mode="RGB").save(path, format="PNG")


def _check_count(value: int | None, name: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{name} must be a positive integer or None, got {value!r}")


def _scan_train(train_root: Path, per_class: int | None) -> tuple[list[str], list[tuple[Path, int]]]:
    classes = _class_dirs(train_root)
    if len(classes) < 2:
        raise ValueError(
            f"{train_root} must contain at least two class folders (ImageFolder layout: "
            f"<class>/<image>), found {len(classes)}"
        )
    samples = []
    for idx, name in enumerate(classes):
        files = _list_images(train_root / name)
        if not files:
            raise ValueError(f"class folder {train_root / name} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        samples += [(p, idx) for p in files[:per_class]]
    return classes, samples


def _scan_test(test_root: Path, classes: list[str], per_class: int | None) -> list[tuple[Path, int]]:
    extra = sorted(set(_class_dirs(test_root)) - set(classes))
    if extra:
        raise ValueError(f"{test_root} has class folders that the training set lacks: {', '.join(extra)}")
    samples = []
    for idx, name in enumerate(classes):
        if (test_root / name).is_dir():
            samples += [(p, idx) for p in _list_images(test_root / name)[:per_class]]
    return samples


def _check_output(out: Path, source: Path, overwrite: bool) -> None:
    out_r, src_r = out.resolve(), source.resolve()
    if out_r == src_r or out_r in src_r.parents or src_r in out_r.parents:
        raise ValueError(f"output folder {out} must lie outside the source {source} (and not contain it)")
    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise ValueError(f"output path {out} exists and is not a folder; choose another path")
        if any(out.iterdir()) and not overwrite:
            raise ValueError(
                f"output folder {out} is not empty; choose a new folder, empty it, or pass overwrite=True"
            )


def build_benchmark(
    source: Path,
    out: Path,
    attack: str,
    rate: float = 0.05,
    target: str | None = None,
    per_class: int | None = None,
    test_per_class: int | None = None,
    seed: int = 0,
    params: dict | None = None,
    *,
    overwrite: bool = False,
) -> dict:
    """Write a poisoned copy of the ImageFolder ``source`` to ``out`` and return its manifest.

    ``attack`` is one of ``ATTACKS``; ``rate`` in (0, 1) is the poisoned share of the whole (possibly
    ``per_class``-truncated) training set; ``target`` is a class name (default: the third class in
    sorted order; must stay None for ``badnets_all2all``); ``params`` overrides the attack's
    ``DEFAULT_PARAMS`` entries. Raises ValueError for bad arguments or a bad source, and refuses an
    output folder that already holds files unless ``overwrite=True``.
    """
    if attack not in ATTACKS:
        raise ValueError(f"unknown attack {attack!r}; choose one of {', '.join(ATTACKS)}")
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 < rate < 1.0:
        raise ValueError(f"rate must be a number strictly between 0 and 1, got {rate!r}")
    _check_count(per_class, "per_class")
    _check_count(test_per_class, "test_per_class")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    resolved = _resolve_params(attack, params)
    all2all = attack == "badnets_all2all"

    source, out = Path(source), Path(out)
    if not source.is_dir():
        raise ValueError(f"source folder {source} does not exist or is not a folder")
    # Either source/train (+ optional source/test) or a bare ImageFolder used as the training set.
    if (source / "train").is_dir():
        train_root = source / "train"
        test_root = source / "test" if (source / "test").is_dir() else None
    else:
        train_root, test_root = source, None
    classes, train = _scan_train(train_root, per_class)
    test = _scan_test(test_root, classes, test_per_class) if test_root is not None else []
    num_classes = len(classes)

    if all2all:
        if target is not None:
            raise ValueError("badnets_all2all maps every class y to (y + 1) mod C; leave target as None")
        target_index = None
    else:
        if target is None:
            target = classes[min(2, num_classes - 1)]
        if target not in classes:
            raise ValueError(f"target {target!r} is not a class of {train_root}; classes: {', '.join(classes)}")
        target_index = classes.index(target)

    _check_output(out, source, overwrite)

    # --- choose the poisoned (and WaNet cross) samples -------------------------------------------------
    labels = np.array([y for _, y in train])
    num_train = len(train)
    num_poisoned = int(math.floor(rate * num_train + 0.5))  # round half up
    if all2all:
        pool = np.arange(num_train)
    elif attack in _CLEAN_LABEL:
        pool = np.flatnonzero(labels == target_index)
    else:
        pool = np.flatnonzero(labels != target_index)
    if num_poisoned < 1:
        raise ValueError(f"rate {rate} of {num_train} training images poisons no image; raise rate or use more images")
    if num_poisoned > len(pool):
        kind = "target-class" if attack in _CLEAN_LABEL else "eligible"
        raise ValueError(
            f"rate {rate} asks for {num_poisoned} poisoned images but only {len(pool)} {kind} images exist; lower rate"
        )
    poisoned_idx = np.sort(_rng(seed, _STREAM_POISON).choice(pool, size=num_poisoned, replace=False))

    cross_idx = np.array([], dtype=int)
    if attack == "wanet":
        num_cross = int(math.floor(resolved["cross_ratio"] * num_poisoned + 0.5))
        rest = np.setdiff1d(np.arange(num_train), poisoned_idx)
        if num_cross > len(rest):
            raise ValueError(
                f"cross_ratio {resolved['cross_ratio']} asks for {num_cross} noise-mode images but only "
                f"{len(rest)} unpoisoned images remain; lower cross_ratio or rate"
            )
        cross_idx = np.sort(_rng(seed, _STREAM_CROSS).choice(rest, size=num_cross, replace=False))

    # Names come from one permutation of the whole set, so they carry no class or poison information.
    width = max(6, len(str(num_train - 1)))
    ids = _rng(seed, _STREAM_NAMES).permutation(num_train)

    if attack == "blended" and not resolved["pattern_size"] and _mixed_sizes([p for p, _ in train + test]):
        resolved["pattern_size"] = MIXED_SIZES_PATTERN  # one pattern for every size (recorded in the manifest)
    trigger = _make_trigger(attack, resolved, seed)
    poisoned_set, cross_set = set(poisoned_idx.tolist()), set(cross_idx.tolist())
    cross_noise = _rng(seed, _STREAM_CROSS_NOISE)

    def poisoned_label(y: int) -> int:
        if attack in _CLEAN_LABEL:
            return y
        return (y + 1) % num_classes if all2all else target_index

    # --- write everything into a hidden sibling folder, then move it into place -----------------------
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp creates 0700; the result should look like any other folder
        for name in classes:
            (tmp / "train" / name).mkdir(parents=True)

        records = []  # (relpath, original class, source relpath)
        poisoned_paths, cross_paths = [], []
        for i, (path, y) in enumerate(train):
            img = _load_rgb(path)
            folder_y = y
            if i in poisoned_set:
                img = trigger(img)
                folder_y = poisoned_label(y)
            elif i in cross_set:
                img = trigger(img, noise_rng=cross_noise)  # random warp, true label kept
            rel = f"{classes[folder_y]}/{ids[i]:0{width}d}.png"
            _save_png(img, tmp / "train" / rel)
            records.append((rel, classes[y], path.relative_to(source).as_posix()))
            if i in poisoned_set:
                poisoned_paths.append(rel)
            elif i in cross_set:
                cross_paths.append(rel)

        # Test sets: clean copies, plus triggered copies of every image the backdoor should redirect,
        # named after their clean twin so the two can be paired.
        if all2all:
            target_mapping = {c: classes[(k + 1) % num_classes] for k, c in enumerate(classes)}
        else:
            target_mapping = {c: target for c in classes if c != target}
        test_triggered_count = 0
        if test_root is not None:
            for sub in ("test", "test_triggered"):
                for name in classes:
                    (tmp / sub / name).mkdir(parents=True)
            counters = dict.fromkeys(classes, 0)
            for path, y in test:
                name = classes[y]
                rel = f"{name}/{counters[name]:0{width}d}.png"
                counters[name] += 1
                img = _load_rgb(path)
                _save_png(img, tmp / "test" / rel)
                if name in target_mapping:
                    _save_png(trigger(img), tmp / "test_triggered" / rel)
                    test_triggered_count += 1

        records.sort()
        manifest = {
            "schema": SCHEMA_VERSION,
            "attack": attack,
            "params": resolved,
            "rate": rate,
            "seed": seed,
            "target": target,
            "target_index": target_index,
            "classes": classes,
            "source": str(source),
            "num_train": num_train,
            "num_poisoned": num_poisoned,
            "poisoned": sorted(poisoned_paths),
            "original_labels": {rel: label for rel, label, _ in records},
            "sources": {rel: src for rel, _, src in records},
            "cross": sorted(cross_paths),
            "all2all": all2all,
            "target_mapping": target_mapping,
            "num_test": len(test),
            "test_triggered_count": test_triggered_count,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")

        if out.exists():
            # Move the old folder aside first so a failure here never leaves `out` half-replaced.
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            old.rmdir()
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest
