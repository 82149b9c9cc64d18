"""Reading a benchmark's ``manifest.json`` (written by build.py): its ground truth, for the commands
that measure an audit against it (`split --truth`, `evaluate --truth`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import BadInputError

_FIX = "Pass the manifest.json written by `bsd-audit make-benchmark`."


def read_manifest(path: Path) -> dict:
    try:
        doc = json.loads(Path(path).read_text())
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        return doc
    except (OSError, ValueError) as exc:
        raise BadInputError(f"{path}: not a readable benchmark manifest ({exc}). {_FIX}") from exc


def poisoned_mask(path: Path, paths: list[str]) -> np.ndarray:
    """Which of ``paths`` (relative to the data root) the manifest lists as poisoned."""
    doc = read_manifest(path)
    poisoned = doc.get("poisoned")
    if not isinstance(poisoned, list):
        raise BadInputError(f"{path}: not a readable benchmark manifest (no list of poisoned paths). {_FIX}")
    listed = set(poisoned)
    return np.array([p in listed for p in paths], dtype=bool)


def backdoor_targets(path: Path, labels: np.ndarray, classes: list[str]) -> tuple[np.ndarray, str]:
    """The class the backdoor sends each sample of true class ``labels`` to, and the attack's target
    in words (one class, or all-to-all)."""
    doc = read_manifest(path)
    mapping = doc.get("target_mapping") or ({c: doc["target"] for c in classes} if doc.get("target") else None)
    if not mapping:
        raise BadInputError(f"{path}: the manifest names no target or target_mapping.")
    try:
        to = np.array([classes.index(mapping[classes[y]]) if classes[y] in mapping else y for y in labels])
    except ValueError as exc:
        raise BadInputError(f"{path}: target_mapping names a class the model does not have ({exc}).") from exc
    return to, "all-to-all (y -> y+1)" if doc.get("all2all") else str(doc.get("target"))
