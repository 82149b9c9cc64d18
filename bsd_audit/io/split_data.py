"""Read a split artifact back into memory, for the commands that only look at one (export, report).

The reader takes what those commands need and nothing else (no weights, no optimiser state), checks
that every per-sample array has one entry per sample, and turns every defect into a BadInputError
that names the file, so a damaged or foreign artifact never ends in a traceback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import BadInputError
from .artifacts import open_artifact, strings

SCORE_NAMES = ("oss", "als", "indicator")  # stored by split; all three high = clean
REQUIRED = ("classes", "samples/label", "target/votes", "target/isolated", "pools/clean",
            *(f"scores/{s}" for s in SCORE_NAMES))


@dataclass
class SplitData:
    """One split artifact, as plain Python and numpy values (index i = sample i everywhere)."""

    path: Path
    classes: list[str]
    paths: list[str]  # relative to the data root, sorted
    labels: np.ndarray  # int64 class index per sample
    scores: dict[str, np.ndarray]  # oss (NaN outside the target class), als, indicator; high = clean
    clean: np.ndarray  # bool: in the final clean pool
    target: dict[str, Any]  # /target attributes, plus "votes" (per-class counts) and "num_isolated"
    fingerprint: str
    data_root: str
    attrs: dict[str, Any] = field(default_factory=dict)  # other root attributes (created, tool_version, ...)
    summary: dict[str, Any] = field(default_factory=dict)  # the split command's JSON summary
    suspicion: np.ndarray | None = None  # /scores/suspicion when the artifact has one: high = suspicious
    truth: np.ndarray | None = None  # /truth/poisoned (benchmarks only)
    verdict: dict[str, Any] | None = None  # /verdict attributes when the artifact has them
    suspicious: np.ndarray | None = None  # bool mask of /verdict/suspicious_index (the suspicious list)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def target_name(self) -> str:
        return str(self.target["target_name"])


def _py(value: Any) -> Any:
    """An HDF5 attribute as a plain Python value (numpy scalars and bytes are not JSON-friendly)."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _per_sample(f: h5py.File, name: str, n: int) -> np.ndarray:
    arr = np.asarray(f[name][()])
    if arr.shape != (n,):
        raise BadInputError(f"{f.filename}: {name} has shape {arr.shape}, expected ({n},) (one value per sample). "
                            "The file is damaged; re-run split.")
    return arr


def read_split_artifact(path: Path) -> SplitData:
    """Load what export and report need from a split artifact; BadInputError (naming the file) otherwise."""
    path = Path(path)
    with open_artifact(path, "split") as f:
        try:
            missing = [name for name in REQUIRED if not isinstance(f.get(name), h5py.Dataset)]
            if missing:
                raise BadInputError(f"{path}: incomplete split artifact (no /{missing[0]}). Re-run split.")
            n = int(f.attrs["num_samples"])
            classes = strings(f["classes"])
            labels = _per_sample(f, "samples/label", n).astype(np.int64)
            if n and (labels.min() < 0 or labels.max() >= len(classes)):
                raise BadInputError(f"{path}: sample labels fall outside the {len(classes)} classes. "
                                    "The file is damaged; re-run split.")
            target = {k: _py(v) for k, v in f["target"].attrs.items()}
            target["votes"] = np.asarray(f["target/votes"][()]).tolist()
            target["num_isolated"] = int(f["target/isolated"].shape[0])
            try:
                summary = json.loads(f.attrs.get("summary", "{}"))
            except ValueError:
                summary = {}
            data = SplitData(
                path=path, classes=classes, paths=strings(f["samples/path"]), labels=labels,
                scores={name: _per_sample(f, f"scores/{name}", n).astype(np.float64) for name in SCORE_NAMES},
                clean=_per_sample(f, "pools/clean", n).astype(bool), target=target,
                fingerprint=str(_py(f.attrs["fingerprint"])), data_root=str(_py(f.attrs["data_root"])),
                attrs={k: _py(v) for k, v in f.attrs.items() if k not in ("config", "summary")},
                summary=summary if isinstance(summary, dict) else {},
            )
            if "scores/suspicion" in f:
                data.suspicion = _per_sample(f, "scores/suspicion", n).astype(np.float64)
            if "truth/poisoned" in f:
                data.truth = _per_sample(f, "truth/poisoned", n).astype(bool)
            if "verdict" in f:
                data.verdict = {k: _py(v) for k, v in f["verdict"].attrs.items()}
                if "verdict/suspicious_index" in f:
                    idx = np.asarray(f["verdict/suspicious_index"][()], dtype=np.int64)
                    if len(idx) and (idx.min() < 0 or idx.max() >= n):
                        raise BadInputError(f"{path}: /verdict/suspicious_index points outside the {n} samples. "
                                            "The file is damaged; re-run split.")
                    data.suspicious = np.zeros(n, dtype=bool)
                    data.suspicious[idx] = True
            return data
        except KeyError as exc:
            raise BadInputError(f"{path}: incomplete split artifact (missing {exc}). Re-run split.") from exc
        except (OSError, RuntimeError, ValueError, TypeError) as exc:  # h5py's errors for damaged data
            raise BadInputError(f"{path}: damaged split artifact ({exc}). Re-run split.") from exc
