"""split's checkpoint: where the run stands at an epoch boundary, so a killed run can continue.

split trains in two phases, and its checkpoint (``OUT.ckpt.h5``, the format of io/checkpoint.py)
holds the state of the one it is in (detect-target runs the first alone and writes only it):

- ``target``: the altruistic warm-up (method/target.py, WarmupState): g_φ and its optimiser, the
  per-sample loss sums over the window epochs, the per-epoch second-likely classes and objectives;
- ``bsd``: Algorithm 1 (method/bsd.py, BSDState): both models, the three optimisers, the pools,
  the per-epoch history; and the TargetEstimate the warm-up ended with.

Both phases also keep the device generator's and numpy's generator state, so batch order,
augmentation and mixup after a resume are those of a run that never stopped. Model initialisation
draws from torch's global generator, but nothing during training does: a resumed run builds its
models in the same order before loading their states, so that needs no saving.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import BadInputError
from ..method.bsd import POOL_NAMES, BSDState, EpochRecord
from ..method.target import TargetEstimate, WarmupState
from .checkpoint import Checkpoint, epoch_delay, load_checkpoint, save_checkpoint

PHASES = {"target": "altruistic warm-up", "bsd": "BSD training"}
_ESTIMATE_ARRAYS = ("votes", "isolated", "second_likely_per_epoch", "ce", "sce", "fit_rank")
_ESTIMATE_VALUES = ("target", "confidence", "isolated_loss_mean", "loss_median", "second_likely_target", "history")


@dataclass
class SplitState:
    """A checkpoint read back: the phase it was written in and that phase's loop state."""

    phase: str  # target | bsd
    epoch: int  # epochs of that phase completed
    warmup: WarmupState | None = None  # phase target
    estimate: TargetEstimate | None = None  # phase bsd
    bsd: BSDState | None = None  # phase bsd
    changed: dict = field(default_factory=dict)  # learning rates set differently now: {name: [was, now]}


class SplitCheckpoints:
    """Saves split's state at every epoch end (``warmup_epoch``, ``bsd_epoch``: the loops'
    ``maybe_checkpoint``) and reads it back (``resume``). ``after_epoch(phase, epoch)`` runs once an
    epoch's checkpoint is on disk (tests interrupt a run there)."""

    def __init__(self, path: Path, identity: dict, cfg, ds, device: str, gen: torch.Generator,
                 rng: np.random.Generator, after_epoch: Callable[[str, int], None] | None = None):
        self.path, self.identity, self.cfg, self.ds, self.device = Path(path), identity, cfg, ds, device
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

    def _save(self, phase: str, epoch: int, models: dict, optimizers: dict, arrays: dict, history: list,
              meta: dict) -> None:
        save_checkpoint(self.path, Checkpoint(
            epoch=epoch, identity=self.identity, models=models, optimizers=optimizers,
            torch_rng=self.gen.get_state(), numpy_rng=self.rng.bit_generator.state, history=history,
            arrays=arrays, meta={"phase": phase, "phase_name": PHASES[phase], **meta}),
            self.cfg, self.ds, self.device)
        epoch_delay()
        if self.after_epoch is not None:
            self.after_epoch(phase, epoch - 1)

    # ------------------------------------------------------------------ read
    def resume(self) -> SplitState | None:
        """The saved state, or None when there is no checkpoint. Refuses a checkpoint of other data,
        settings or options (BadInputError naming the file); restores both generators."""
        if not self.path.exists():
            return None
        ck = load_checkpoint(self.path, self.cfg, self.ds, self.identity, self.device)
        try:
            state = self._state_of(ck)
        except (KeyError, TypeError, ValueError) as exc:
            raise BadInputError(f"{self.path}: incomplete checkpoint (missing or damaged {exc}). "
                                "Delete it, or pass --no-resume to start over.") from exc
        self.gen.set_state(ck.torch_rng)
        self.rng.bit_generator.state = ck.numpy_rng
        return state

    @staticmethod
    def _state_of(ck: Checkpoint) -> SplitState:
        phase = ck.meta["phase"]
        if phase == "target":
            warmup = WarmupState(ck.epoch, ck.models["altruistic"], ck.optimizers["altruistic"],
                                 {k: torch.from_numpy(ck.arrays[f"sum.{k}"]) for k in ("ce", "sce", "rank")},
                                 list(ck.meta["second_per_epoch"]), list(ck.history))
            return SplitState(phase, ck.epoch, warmup=warmup, changed=ck.changed)
        if phase != "bsd":
            raise ValueError(f"phase {phase!r}")
        values = ck.meta["estimate"]
        estimate = TargetEstimate(**{k: ck.arrays.get(f"estimate.{k}") for k in _ESTIMATE_ARRAYS},
                                  **{k: values[k] for k in _ESTIMATE_VALUES})
        for k in _ESTIMATE_ARRAYS[:-1]:  # fit_rank alone may be absent (an estimate from an older artifact)
            if estimate.__dict__[k] is None:
                raise KeyError(f"arrays/estimate.{k}")
        bsd = BSDState(ck.epoch, {k: ck.models[k] for k in ("main", "altruistic")},
                       {k: ck.optimizers[k] for k in ("warmup", "mixmatch", "altruistic")},
                       {k: ck.arrays.get(f"pool.{k}") for k in POOL_NAMES}, [EpochRecord(**r) for r in ck.history])
        return SplitState(phase, ck.epoch, estimate=estimate, bsd=bsd, changed=ck.changed)
