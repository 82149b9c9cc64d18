"""Training checkpoints: everything a run needs to continue as if it had never stopped.

A checkpoint holds the state of each model and optimiser, the epoch reached, the state of every
random generator the loop draws from (the device generator for batches and augmentation, numpy's
for mixup), the per-epoch history, and any arrays the loop carries (accumulated losses, pools), so a
resumed run gives the same weights as an uninterrupted one on the same device. It also records what
it was made from (dataset fingerprint, config, run identity): resuming with other data or other
settings is refused instead of silently mixing two runs. The one exception is the learning rates
(RESUME_MAY_CHANGE): lowering one is how a diverged run is continued from its last good epoch.

Written atomically after every epoch: a kill at any moment leaves the previous checkpoint whole.
train-clean (engine/purify.py), split and detect-target (io/split_checkpoint.py) use this format; they differ
in which models, optimisers and arrays they put in it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import torch

from ..errors import BadInputError
from .artifacts import (atomic_h5, members, open_artifact, read_optimizer, read_tensors, write_optimizer,
                        write_provenance, write_tensors)

# Config fields a checkpoint may be resumed with a different value of: the learning rates, so that a
# run stopped by a NaN loss can continue from its last good epoch with a lower one.
RESUME_MAY_CHANGE = ("altruistic_lr", "warmup_lr", "mixmatch_lr")
# Config fields that say where the data is kept, not what is computed (the same pixels reach the
# model whichever store holds them): a run stopped for lack of memory may continue with --data-store disk.
_NOT_COMPARED = ("data_store", "cache_dir")

_FIX = "Delete it, or pass --no-resume to start over."


@dataclass
class Checkpoint:
    epoch: int  # epochs completed (of the current phase)
    identity: dict  # what the run is (command, mode, phase, ...): must match to resume
    models: dict[str, dict]  # name -> state_dict
    optimizers: dict[str, dict]  # name -> optimiser state_dict
    torch_rng: torch.Tensor  # the device generator's state
    numpy_rng: dict  # numpy Generator.bit_generator.state
    history: list  # per-epoch records so far (JSON-able)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # what else the loop carries; None values are left out
    meta: dict = field(default_factory=dict)  # small JSON-able values
    changed: dict = field(default_factory=dict)  # on load: RESUME_MAY_CHANGE fields now set differently {name: [was, now]}


def save_checkpoint(path: Path, ckpt: Checkpoint, cfg, ds, device: str) -> None:
    with atomic_h5(path) as f:
        write_provenance(f, "checkpoint", cfg, ds, device)
        f.attrs.update({"epoch": ckpt.epoch, "identity": json.dumps(ckpt.identity, sort_keys=True),
                        "numpy_rng": json.dumps(ckpt.numpy_rng), "history": json.dumps(ckpt.history),
                        "meta": json.dumps(ckpt.meta, sort_keys=True)})
        f.create_dataset("torch_rng", data=ckpt.torch_rng.cpu().numpy())
        for name, state in ckpt.models.items():
            write_tensors(f.create_group(f"weights/{name}"), state)
        for name, state in ckpt.optimizers.items():
            write_optimizer(f.create_group(f"optimizer/{name}"), state)
        arrays = f.create_group("arrays")
        for name, value in ckpt.arrays.items():
            if value is not None:
                arrays.create_dataset(name, data=np.asarray(value))


def _device_kind(device: str) -> str:
    """"cuda:0 (NVIDIA H100)" -> "cuda", "cpu (2 threads)" -> "cpu"."""
    return device.split(" ")[0].split(":")[0]


def load_checkpoint(path: Path, cfg, ds, identity: dict, device: str) -> Checkpoint:
    """Read a checkpoint and refuse it unless it belongs to this run: same data, same config
    (the seed included; learning rates excepted), same identity and the same kind of device (a
    generator's state does not carry over from a GPU to the CPU, or back)."""
    try:
        f = open_artifact(path, "checkpoint")
    except BadInputError as exc:  # not this tool's checkpoint, or damaged: say how to get past it
        raise BadInputError(f"{exc} This is the checkpoint beside --out: {_FIX}") from exc
    with f:
        try:
            if f.attrs["fingerprint"] != ds.fingerprint:
                raise BadInputError(f"{path}: checkpoint of another dataset ({f.attrs['data_root']}). "
                                    f"Resume with the data it was made from. {_FIX}")
            stored_cfg, now = json.loads(f.attrs["config"]), json.loads(cfg.to_json())
            differ = sorted(k for k in set(stored_cfg) | set(now)
                            if stored_cfg.get(k) != now.get(k) and k not in _NOT_COMPARED)
            if [k for k in differ if k not in RESUME_MAY_CHANGE]:
                raise BadInputError(f"{path}: checkpoint made with other settings ({', '.join(differ)} differ). "
                                    f"Resume with the same preset and overrides. {_FIX}")
            if _device_kind(str(f.attrs["device"])) != _device_kind(device):
                raise BadInputError(f"{path}: checkpoint made on {f.attrs['device']}, this run is on {device}. "
                                    f"Resume on the same kind of device (--device). {_FIX}")
            stored_id = json.loads(f.attrs["identity"])
            if stored_id != identity:
                changed = sorted(k for k in set(stored_id) | set(identity) if stored_id.get(k) != identity.get(k))
                raise BadInputError(f"{path}: checkpoint of another run ({', '.join(changed)} differ). "
                                    f"Resume the same command. {_FIX}")
            return Checkpoint(
                epoch=int(f.attrs["epoch"]), identity=stored_id,
                models={name: read_tensors(g) for name, g in members(f["weights"], h5py.Group)},
                optimizers={name: read_optimizer(g) for name, g in members(f["optimizer"], h5py.Group)},
                torch_rng=torch.from_numpy(np.asarray(f["torch_rng"][()])),
                numpy_rng=json.loads(f.attrs["numpy_rng"]), history=json.loads(f.attrs["history"]),
                arrays={name: d[()] for name, d in members(f["arrays"], h5py.Dataset)} if "arrays" in f else {},
                meta=json.loads(f.attrs["meta"]) if "meta" in f.attrs else {},
                changed={k: [stored_cfg.get(k), now.get(k)] for k in differ})
        except KeyError as exc:
            raise BadInputError(f"{path}: incomplete checkpoint (missing {exc}). {_FIX}") from exc
        except (OSError, RuntimeError, ValueError) as exc:
            raise BadInputError(f"{path}: damaged checkpoint ({exc}). {_FIX}") from exc


def check_ranks_see(path: Path, seen) -> None:
    """Under torchrun every rank must resume from the same checkpoint (``seen``: what this rank read
    of it, None for nothing), or none may."""
    from ..engine.distributed import differs_across_ranks
    if differs_across_ranks(seen):
        raise BadInputError(f"{path}: the ranks of this run do not all see the same checkpoint (some find it, "
                            "some do not, or find another). Put --out on a file system every node shares, or "
                            "pass --no-resume to start over.")


def describe_checkpoint(path: Path) -> str:
    """How far the run that wrote a checkpoint got, in words ("after 3 epoch(s) of the BSD training")."""
    with h5py.File(path, "r") as f:
        epoch, meta = int(f.attrs["epoch"]), json.loads(f.attrs.get("meta", "{}"))
    return f"after {epoch} epoch(s)" + (f" of the {meta['phase_name']}" if "phase_name" in meta else "")


def restore_optimizer(opt: torch.optim.Optimizer, state: dict, lr: float) -> None:
    """Load an optimiser's saved state, at the learning rate configured now (it may have been lowered
    to continue a diverged run; otherwise it is the saved one)."""
    opt.load_state_dict(state)
    for group in opt.param_groups:
        group["lr"] = lr


def epoch_delay() -> None:
    """Sleep BSD_AUDIT_EPOCH_DELAY seconds (default 0) after each checkpoint. For tests only: it lets
    a test kill a run on tiny data between two epochs, reliably."""
    delay = float(os.environ.get("BSD_AUDIT_EPOCH_DELAY", "0") or 0)
    if delay > 0:
        time.sleep(delay)
