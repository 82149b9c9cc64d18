"""evaluate's metrics file (kind ``metrics``): this module alone writes it.

Besides the provenance (artifacts/h5.py; ``/samples`` is the clean test set) it holds the JSON
summary (root attribute ``summary``), the model it judged (``model``, ``model_fingerprint``),
``/predictions/test``, ``/confusion``, and for a triggered set ``/predictions/triggered`` with
``/triggered/path`` and ``/triggered/label``.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from ..config import Config
from ..data import ImageDataset
from .h5 import atomic_h5, write_provenance
from .model import LoadedModel


def write_metrics(out: Path, summary: dict, test_ds: ImageDataset, pred: np.ndarray, conf: np.ndarray,
                  trig_ds: ImageDataset | None, trig_pred: np.ndarray | None, model: LoadedModel, device: str) -> None:
    cfg = Config(**{k: v for k, v in model.config.items() if k in Config.model_fields})  # the model's own settings
    with atomic_h5(out) as f:
        write_provenance(f, "metrics", cfg, test_ds, device)
        f.attrs["summary"] = json.dumps(summary, sort_keys=True)
        f.attrs["model"] = summary["model"]
        f.attrs["model_fingerprint"] = model.fingerprint
        f.create_dataset("predictions/test", data=pred)
        f.create_dataset("confusion", data=conf)
        if trig_ds is not None:
            f.create_dataset("predictions/triggered", data=trig_pred)
            f.create_dataset("triggered/path", data=np.array(trig_ds.paths, dtype=object),
                             dtype=h5py.string_dtype("utf-8"))
            f.create_dataset("triggered/label", data=trig_ds.labels.cpu().numpy())
