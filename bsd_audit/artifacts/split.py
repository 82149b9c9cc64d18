"""The split artifact (kind ``split``, written by `split`): this module alone writes and reads it.

Beyond the target estimate's groups (artifacts/target.py) it holds:

- ``/scores``: ``oss`` (NaN outside D_t), ``indicator`` (I, eq. 9), both high = clean; ``main_pred``
  and ``main_label_prob``, the final main model's class and the probability it gives the label;
- ``/pools``: the final clean pool (``clean``, ``clean_index``, ``poison_index``) and the initial
  pools (``clean_init``, ``clean_oss``, ``clean_als``);
- ``/history``: one row per epoch (stage, α_T, pool sizes, losses, poison left when truth is known);
- ``/truth``: the benchmark's ground truth and the split's quality against it (benchmarks only);
- ``/weights/main`` and ``/weights/altruistic``: both models at the end.

``read_split`` checks that every per-sample array has one entry per sample and turns every defect
into a BadInputError that names the file, so a damaged or foreign artifact never ends in a traceback.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from ..config import Config
from ..data import ImageDataset
from ..errors import BadInputError
from ..method.bsd import SplitResult
from ..method.target import TargetEstimate
from ..method.verdict import Verdict
from .h5 import atomic_h5, check_fingerprint, open_artifact, read_tensors, strings, write_provenance, write_tensors
from .target import plain_value, read_target_attrs, read_verdict, write_estimate

SCORE_NAMES = ("oss", "als", "indicator")  # all three high = clean
_REQUIRED = ("classes", "samples/label", "target/votes", "target/isolated", "pools/clean",
             *(f"scores/{s}" for s in SCORE_NAMES))


@dataclass
class SplitArtifact:
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
    created: str
    config: dict[str, Any]  # the config the split ran with
    attrs: dict[str, Any] = field(default_factory=dict)  # other root attributes (tool_version, device, ...)
    summary: dict[str, Any] = field(default_factory=dict)  # the split command's JSON summary
    suspicion: np.ndarray | None = None  # /scores/suspicion: high = suspicious
    truth: np.ndarray | None = None  # /truth/poisoned (benchmarks only)
    verdict: dict[str, Any] | None = None  # /verdict attributes
    suspicious: np.ndarray | None = None  # bool mask of /verdict/suspicious_index (the suspicious list)
    main_state: dict[str, torch.Tensor] | None = None  # /weights/main, when asked for
    main_pred: np.ndarray | None = None  # /scores/main_pred: the final main model's class per sample
    main_label_prob: np.ndarray | None = None  # /scores/main_label_prob: its probability of the label

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def target_name(self) -> str:
        return str(self.target["target_name"])

    @property
    def target_index(self) -> int:
        return int(self.target["target"])


def write_split(path: Path, res: SplitResult, est: TargetEstimate, target_source: str, ds: ImageDataset,
                cfg: Config, device: str, truth: np.ndarray | None, summary: dict, verdict: Verdict) -> None:
    with atomic_h5(path) as f:
        write_provenance(f, "split", cfg, ds, device)
        write_estimate(f, est, ds.classes, res.target, target_source, verdict)
        s = f["scores"]
        s.create_dataset("oss", data=res.oss_scores)
        s.create_dataset("indicator", data=res.indicator)
        if res.main_pred is not None:
            s.create_dataset("main_pred", data=res.main_pred)
            s.create_dataset("main_label_prob", data=res.main_label_prob)
        s.attrs["direction"] = ("high = clean for oss, als, indicator; low = fitted early for fit_rank; "
                                "high = suspicious for suspicion")
        p = f.create_group("pools")
        p.create_dataset("clean_index", data=np.flatnonzero(res.clean))
        p.create_dataset("poison_index", data=np.flatnonzero(~res.clean))
        p.create_dataset("clean", data=res.clean)
        p.create_dataset("clean_init", data=res.clean_init)
        p.create_dataset("clean_oss", data=res.clean_oss)
        p.create_dataset("clean_als", data=res.clean_als)
        h = f.create_group("history")
        for fld in dataclasses.fields(res.history[0]):
            values = [getattr(r, fld.name) for r in res.history]
            if fld.name == "stage":
                h.create_dataset(fld.name, data=np.array(values, dtype=object), dtype=h5py.string_dtype("utf-8"))
            else:
                h.create_dataset(fld.name, data=np.array(values))
        if truth is not None:
            t = f.create_group("truth")
            t.create_dataset("poisoned", data=truth)
            t.attrs.update({k: v for k, v in summary.get("truth", {}).items() if v is not None})
        write_tensors(f.create_group("weights/main"), res.main_state)
        write_tensors(f.create_group("weights/altruistic"), res.altruistic_state)
        f.attrs["summary"] = json.dumps(summary, sort_keys=True)


def _per_sample(f: h5py.File, name: str, n: int) -> np.ndarray:
    arr = np.asarray(f[name][()])
    if arr.shape != (n,):
        raise BadInputError(f"{f.filename}: {name} has shape {arr.shape}, expected ({n},) (one value per sample). "
                            "The file is damaged; re-run split.")
    return arr


def read_split(path: Path, ds: ImageDataset | None = None, main_weights: bool = False) -> SplitArtifact:
    """Load a split artifact. With ``ds`` the artifact must have been computed on that dataset (its
    fingerprint); with ``main_weights`` the main model's weights are read too (train-clean starts
    from them). BadInputError, naming the file, for anything damaged or foreign."""
    path = Path(path)
    with open_artifact(path, "split") as f:
        try:
            if ds is not None:
                check_fingerprint(f, ds, path)
            missing = [name for name in _REQUIRED if not isinstance(f.get(name), h5py.Dataset)]
            if missing:
                raise BadInputError(f"{path}: incomplete split artifact (no /{missing[0]}). Re-run split.")
            n = int(f.attrs["num_samples"])
            classes = strings(f["classes"])
            labels = _per_sample(f, "samples/label", n).astype(np.int64)
            if n and (labels.min() < 0 or labels.max() >= len(classes)):
                raise BadInputError(f"{path}: sample labels fall outside the {len(classes)} classes. "
                                    "The file is damaged; re-run split.")
            try:
                summary = json.loads(f.attrs.get("summary", "{}"))
            except ValueError:
                summary = {}
            verdict, suspicious, suspicion = read_verdict(f, n)
            if suspicion is not None and suspicion.shape != (n,):
                _per_sample(f, "scores/suspicion", n)  # raises, naming the dataset
            return SplitArtifact(
                path=path, classes=classes, paths=strings(f["samples/path"]), labels=labels,
                scores={name: _per_sample(f, f"scores/{name}", n).astype(np.float64) for name in SCORE_NAMES},
                clean=_per_sample(f, "pools/clean", n).astype(bool), target=read_target_attrs(f),
                fingerprint=str(plain_value(f.attrs["fingerprint"])), data_root=str(plain_value(f.attrs["data_root"])),
                created=str(plain_value(f.attrs["created"])), config=json.loads(f.attrs["config"]),
                attrs={k: plain_value(v) for k, v in f.attrs.items() if k not in ("config", "summary")},
                summary=summary if isinstance(summary, dict) else {}, suspicion=suspicion,
                truth=_per_sample(f, "truth/poisoned", n).astype(bool) if "truth/poisoned" in f else None,
                verdict=verdict, suspicious=suspicious,
                main_state=read_tensors(f["weights/main"]) if main_weights and "weights/main" in f else None,
                main_pred=_per_sample(f, "scores/main_pred", n).astype(np.int64) if "scores/main_pred" in f else None,
                main_label_prob=(_per_sample(f, "scores/main_label_prob", n).astype(np.float64)
                                 if "scores/main_label_prob" in f else None),
            )
        except KeyError as exc:
            raise BadInputError(f"{path}: incomplete split artifact (missing {exc}). Re-run split.") from exc
        except (OSError, RuntimeError, ValueError, TypeError) as exc:  # h5py's errors for damaged data
            raise BadInputError(f"{path}: damaged split artifact ({exc}). Re-run split.") from exc
