"""Training checkpoints: everything a run needs to continue as if it had never stopped.

A checkpoint holds the model and optimiser state, the epoch reached, and the state of every random
generator the loop draws from (the device generator for batches and augmentation, numpy's for
mixup), so a resumed run gives the same weights as an uninterrupted one on the same device. It
also records what it was made from (dataset fingerprint, config, run identity): resuming with
other data or other settings is refused instead of silently mixing two runs.

Written atomically after every epoch: a kill at any moment leaves the previous checkpoint whole.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import BadInputError
from .artifacts import atomic_h5, open_artifact, read_optimizer, read_tensors, write_optimizer, write_provenance, write_tensors


@dataclass
class Checkpoint:
    epoch: int  # epochs completed
    identity: dict  # what the run is (command, mode, split fingerprint, ...): must match to resume
    model_state: dict
    optimizer_state: dict
    torch_rng: torch.Tensor  # the device generator's state
    numpy_rng: dict  # numpy Generator.bit_generator.state
    history: list  # per-epoch records so far (JSON-able dicts)


def save_checkpoint(path: Path, ckpt: Checkpoint, cfg, ds, device: str) -> None:
    with atomic_h5(path) as f:
        write_provenance(f, "checkpoint", cfg, ds, device)
        f.attrs.update({"epoch": ckpt.epoch, "identity": json.dumps(ckpt.identity, sort_keys=True),
                        "numpy_rng": json.dumps(ckpt.numpy_rng), "history": json.dumps(ckpt.history)})
        f.create_dataset("torch_rng", data=ckpt.torch_rng.cpu().numpy())
        write_tensors(f.create_group("weights/model"), ckpt.model_state)
        write_optimizer(f.create_group("optimizer/model"), ckpt.optimizer_state)


def load_checkpoint(path: Path, cfg, ds, identity: dict) -> Checkpoint:
    """Read a checkpoint and refuse it unless it belongs to this run: same data, same config
    (the seed included) and same identity."""
    with open_artifact(path, "checkpoint") as f:
        try:
            if f.attrs["fingerprint"] != ds.fingerprint:
                raise BadInputError(f"{path}: checkpoint of another dataset ({f.attrs['data_root']}). "
                                    "Delete it, or resume with the data it was made from.")
            stored_cfg = json.loads(f.attrs["config"])
            if stored_cfg != json.loads(cfg.to_json()):
                changed = sorted(k for k in set(stored_cfg) | set(cfg.to_dict())
                                 if stored_cfg.get(k) != cfg.to_dict().get(k))
                raise BadInputError(f"{path}: checkpoint made with other settings ({', '.join(changed)} differ). "
                                    "Resume with the same preset and overrides, or delete the checkpoint.")
            stored_id = json.loads(f.attrs["identity"])
            if stored_id != identity:
                changed = sorted(k for k in set(stored_id) | set(identity) if stored_id.get(k) != identity.get(k))
                raise BadInputError(f"{path}: checkpoint of another run ({', '.join(changed)} differ). "
                                    "Resume the same command, or delete the checkpoint.")
            return Checkpoint(
                epoch=int(f.attrs["epoch"]), identity=stored_id, model_state=read_tensors(f["weights/model"]),
                optimizer_state=read_optimizer(f["optimizer/model"]),
                torch_rng=torch.from_numpy(np.asarray(f["torch_rng"][()])),
                numpy_rng=json.loads(f.attrs["numpy_rng"]), history=json.loads(f.attrs["history"]))
        except KeyError as exc:
            raise BadInputError(f"{path}: incomplete checkpoint (missing {exc}). Delete it and start again.") from exc
        except (OSError, RuntimeError, ValueError) as exc:
            raise BadInputError(f"{path}: damaged checkpoint ({exc}). Delete it and start again.") from exc
