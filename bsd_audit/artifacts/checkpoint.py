"""Checkpoints: where a run stands at an epoch boundary, so a killed run continues as if it had never stopped.

One mechanism for every command that trains (``OUT.ckpt.h5`` beside its output). A checkpoint holds
the phase the run is in and that phase's loop state, the device generator's and numpy's generator
state (batch order, augmentation and mixup after a resume are those of an uninterrupted run), the
per-epoch history, and what the run was made from (dataset fingerprint, config, run identity):
resuming with other data or other settings is refused instead of silently mixing two runs. The one
exception is the learning rates (RESUME_MAY_CHANGE): lowering one is how a diverged run is continued
from its last good epoch.

Phases (the loop state each keeps):

- ``target``: the altruistic warm-up (method/target.py, WarmupState): g_φ and its optimiser, the
  per-sample loss sums over the window epochs, the per-epoch second-likely classes and objectives;
  ``detect-target`` and the first part of ``split``;
- ``bsd``: Algorithm 1 (method/bsd.py, BSDState): both models, the three optimisers, the pools,
  the per-epoch history, and the TargetEstimate the warm-up ended with;
- ``purify``: ``train-clean`` (method/purify.py, PurifyState): the model, its optimiser, the history.

Model initialisation draws from torch's global generator, but nothing during training does: a
resumed run builds its models in the same order before loading their states, so that needs no
saving. Written atomically after every epoch: a kill at any moment leaves the previous one whole.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import torch

from ..errors import BadInputError
from ..method.bsd import POOL_NAMES, BSDState, EpochRecord
from ..method.purify import PurifyState
from ..method.target import TargetEstimate, WarmupState
from ..training.distributed import differs_across_ranks
from .h5 import (atomic_h5, members, open_artifact, read_optimizer, read_tensors, write_optimizer,
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
    if differs_across_ranks(seen):
        raise BadInputError(f"{path}: the ranks of this run do not all see the same checkpoint (some find it, "
                            "some do not, or find another). Put --out on a file system every node shares, or "
                            "pass --no-resume to start over.")


def describe_checkpoint(path: Path) -> str:
    """How far the run that wrote a checkpoint got, in words ("after 3 epoch(s) of the BSD training")."""
    with h5py.File(path, "r") as f:
        epoch, meta = int(f.attrs["epoch"]), json.loads(f.attrs.get("meta", "{}"))
    return f"after {epoch} epoch(s)" + (f" of the {meta['phase_name']}" if "phase_name" in meta else "")


def epoch_delay() -> None:
    """Sleep BSD_AUDIT_EPOCH_DELAY seconds (default 0) after each checkpoint. For tests only: it lets
    a test kill a run on tiny data between two epochs, reliably."""
    delay = float(os.environ.get("BSD_AUDIT_EPOCH_DELAY", "0") or 0)
    if delay > 0:
        time.sleep(delay)


PHASES = {"target": "altruistic warm-up", "bsd": "BSD training", "purify": "purified model's training"}
_ESTIMATE_ARRAYS = ("votes", "isolated", "second_likely_per_epoch", "ce", "sce", "fit_rank", "holdout_prob",
                    "holdout_called", "holdout_called_prob", "holdout_variety", "copy_of", "coherence_z",
                    "coherence_likeness", "coherence_size", "coherence_group", "trigger_match")
_ESTIMATE_VALUES = ("target", "confidence", "isolated_loss_mean", "loss_median", "second_likely_target", "history",
                    "holdout_share", "trigger_class")


@dataclass
class RunState:
    """A checkpoint read back: the phase it was written in and that phase's loop state."""

    phase: str  # target | bsd | purify
    epoch: int  # epochs of that phase completed
    warmup: WarmupState | None = None  # phase target
    estimate: TargetEstimate | None = None  # phase bsd
    bsd: BSDState | None = None  # phase bsd
    purify: PurifyState | None = None  # phase purify
    changed: dict = field(default_factory=dict)  # learning rates set differently now: {name: [was, now]}


class RunCheckpoints:
    """Saves a run's state at every epoch end (``warmup_epoch``, ``bsd_epoch``, ``purify_epoch``: the
    loops' ``maybe_checkpoint``) and reads it back (``resume``). ``after_epoch(phase, epoch)`` runs
    once an epoch's checkpoint is on disk (tests interrupt a run there). With ``path`` None nothing
    is written (an in-memory audit)."""

    def __init__(self, path: Path | None, identity: dict, cfg, ds, device: str, gen: torch.Generator,
                 rng: np.random.Generator, after_epoch: Callable[[str, int], None] | None = None):
        self.path = None if path is None else Path(path)
        self.identity, self.cfg, self.ds, self.device = identity, cfg, ds, device
        self.gen, self.rng, self.after_epoch = gen, rng, after_epoch
        self.estimate: TargetEstimate | None = None  # set once the warm-up is done; saved with every BSD epoch

    # ------------------------------------------------------------------ write
    def warmup_epoch(self, s: WarmupState) -> None:
        self._save("target", s.epoch, models={"altruistic": s.model}, optimizers={"altruistic": s.optimizer},
                   arrays={f"sum.{k}": v.cpu().numpy() for k, v in s.sums.items()}, history=s.history,
                   meta={"second_per_epoch": s.second_per_epoch})

    def bsd_epoch(self, s: BSDState) -> None:
        est = self.estimate
        arrays = {f"pool.{k}": v for k, v in s.pools.items()}
        arrays.update({f"estimate.{k}": getattr(est, k) for k in _ESTIMATE_ARRAYS})
        self._save("bsd", s.epoch, models=s.models, optimizers=s.optimizers, arrays=arrays,
                   history=[dataclasses.asdict(r) for r in s.history],
                   meta={"estimate": {k: getattr(est, k) for k in _ESTIMATE_VALUES}})

    def purify_epoch(self, s: PurifyState) -> None:
        self._save("purify", s.epoch, models={"model": s.model}, optimizers={"model": s.optimizer},
                   arrays={"guess_marginal": s.guess_marginal},
                   history=s.history, meta={})

    def _save(self, phase: str, epoch: int, models: dict, optimizers: dict, arrays: dict, history: list,
              meta: dict) -> None:
        if self.path is not None:
            save_checkpoint(self.path, Checkpoint(
                epoch=epoch, identity=self.identity, models=models, optimizers=optimizers,
                torch_rng=self.gen.get_state(), numpy_rng=self.rng.bit_generator.state, history=history,
                arrays=arrays, meta={"phase": phase, "phase_name": PHASES[phase], **meta}),
                self.cfg, self.ds, self.device)
            epoch_delay()
        if self.after_epoch is not None:
            self.after_epoch(phase, epoch - 1)

    # ------------------------------------------------------------------ read
    def resume(self) -> RunState | None:
        """The saved state, or None when there is no checkpoint. Refuses a checkpoint of other data,
        settings or options (BadInputError naming the file); restores both generators."""
        if self.path is None or not self.path.exists():
            return None
        ck = load_checkpoint(self.path, self.cfg, self.ds, self.identity, self.device)
        try:
            state = self._state_of(ck)
        except (KeyError, TypeError, ValueError) as exc:
            raise BadInputError(f"{self.path}: incomplete checkpoint (missing or damaged {exc}). {_FIX}") from exc
        self.gen.set_state(ck.torch_rng)
        self.rng.bit_generator.state = ck.numpy_rng
        return state

    @staticmethod
    def _state_of(ck: Checkpoint) -> RunState:
        phase = ck.meta["phase"]
        if phase == "target":
            warmup = WarmupState(ck.epoch, ck.models["altruistic"], ck.optimizers["altruistic"],
                                 {k: torch.from_numpy(ck.arrays[f"sum.{k}"]) for k in ("ce", "sce", "rank")},
                                 list(ck.meta["second_per_epoch"]), list(ck.history))
            return RunState(phase, ck.epoch, warmup=warmup, changed=ck.changed)
        if phase == "purify":
            purify = PurifyState(ck.epoch, ck.models["model"], ck.optimizers["model"], list(ck.history),
                                 ck.arrays.get("guess_marginal"))
            return RunState(phase, ck.epoch, purify=purify, changed=ck.changed)
        if phase != "bsd":
            raise ValueError(f"phase {phase!r}")
        values = ck.meta["estimate"]
        estimate = TargetEstimate(**{k: ck.arrays.get(f"estimate.{k}") for k in _ESTIMATE_ARRAYS},
                                  **{k: values[k] for k in _ESTIMATE_VALUES})
        for k in _ESTIMATE_ARRAYS:
            if estimate.__dict__[k] is None:
                raise KeyError(f"arrays/estimate.{k}")
        bsd = BSDState(ck.epoch, {k: ck.models[k] for k in ("main", "altruistic")},
                       {k: ck.optimizers[k] for k in ("warmup", "mixmatch", "altruistic")},
                       {k: ck.arrays.get(f"pool.{k}") for k in POOL_NAMES}, [EpochRecord(**r) for r in ck.history])
        return RunState(phase, ck.epoch, estimate=estimate, bsd=bsd, changed=ck.changed)
