"""The target artifact (kind ``target``, written by detect-target), and the groups of it that the
split artifact carries too: this module alone knows their layout.

- ``/target``: ỹ_t used and where it came from, the LGA vote (``votes``, ``isolated``), the
  second-likely estimate per epoch, the warm-up objective per epoch;
- ``/scores``: ``lga_ce``, ``als`` (L_sce of g_φ, high = clean) and ``fit_rank`` (0 = fitted first)
  from the warm-up, and ``suspicion`` (high = suspicious) from the verdict;
- ``/verdict``: the attack-present answer with every input, and ``suspicious_index``, the list;
- the target artifact alone: ``/weights/altruistic`` and ``/optimizer/altruistic``, the warmed-up g_φ
  that `split --target-from` continues from.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from ..config import Config, altruistic_net_of
from ..data import ImageDataset
from ..errors import BadInputError
from ..method.target import TargetEstimate
from ..method.verdict import Evidence, Verdict, evidence_of
from .h5 import (atomic_h5, check_fingerprint, config_of, open_artifact, read_optimizer, read_tensors,
                 write_optimizer, write_provenance, write_tensors)


def write_estimate(f: h5py.File, est: TargetEstimate, classes: list[str], used: int, source: str,
                   verdict: Verdict) -> None:
    """The target estimate, its warm-up scores and the verdict, into an artifact being written."""
    g = f.create_group("target")
    g.attrs.update({
        "target": used, "target_name": classes[used], "source": source,
        "lga_target": est.target, "lga_target_name": classes[est.target], "confidence": est.confidence,
        "second_likely_target": est.second_likely_target, "second_likely_name": classes[est.second_likely_target],
        "agree": est.agree, "isolated_loss_mean": est.isolated_loss_mean, "loss_median": est.loss_median,
        "loss_gap": est.loss_gap,
    })
    g.create_dataset("votes", data=est.votes)
    g.create_dataset("holdout_variety", data=est.holdout_variety)  # per class, like the votes
    g.create_dataset("coherence_z", data=est.coherence_z)
    g.create_dataset("coherence_likeness", data=est.coherence_likeness)
    g.create_dataset("coherence_size", data=est.coherence_size)
    g.create_dataset("coherence_group", data=est.coherence_group)
    g.create_dataset("isolated", data=est.isolated)
    g.create_dataset("second_likely_per_epoch", data=est.second_likely_per_epoch)
    g.create_dataset("warmup_objective", data=np.array(est.history, dtype=np.float64))
    s = f.require_group("scores")
    s.create_dataset("lga_ce", data=est.ce)
    s.create_dataset("als", data=est.sce)
    s.create_dataset("fit_rank", data=est.fit_rank)
    s.create_dataset("holdout_prob", data=est.holdout_prob).attrs["share"] = est.holdout_share
    s.create_dataset("holdout_called", data=est.holdout_called)
    s.create_dataset("holdout_called_prob", data=est.holdout_called_prob)
    s.create_dataset("trigger_match", data=est.trigger_match).attrs["class"] = est.trigger_class
    f.require_group("samples").create_dataset("copy_of", data=est.copy_of)
    s.create_dataset("suspicion", data=verdict.suspicion)
    v = f.create_group("verdict")
    v.attrs.update({"verdict": verdict.verdict, "attack_present": verdict.verdict == "poisoned",
                    "score": verdict.score, "reason": verdict.reason, "evidence": json.dumps(verdict.evidence),
                    "suspected": verdict.name(verdict.suspected), "target_in_doubt": verdict.target_in_doubt,
                    "inputs": json.dumps(verdict.inputs, sort_keys=True)})
    v.create_dataset("suspicious_index", data=np.flatnonzero(verdict.suspicious))


def read_estimate(f: h5py.File) -> TargetEstimate:
    """The target estimate an artifact holds (without the altruistic model's weights)."""
    t = f["target"]
    return TargetEstimate(
        target=int(t.attrs["lga_target"]), votes=t["votes"][()], confidence=float(t.attrs["confidence"]),
        isolated=t["isolated"][()], isolated_loss_mean=float(t.attrs["isolated_loss_mean"]),
        loss_median=float(t.attrs["loss_median"]), second_likely_per_epoch=t["second_likely_per_epoch"][()],
        second_likely_target=int(t.attrs["second_likely_target"]), ce=f["scores/lga_ce"][()],
        sce=f["scores/als"][()], fit_rank=f["scores/fit_rank"][()], history=list(t["warmup_objective"][()]),
        holdout_prob=f["scores/holdout_prob"][()], holdout_share=float(f["scores/holdout_prob"].attrs["share"]),
        holdout_called=f["scores/holdout_called"][()], holdout_called_prob=f["scores/holdout_called_prob"][()],
        holdout_variety=t["holdout_variety"][()], copy_of=f["samples/copy_of"][()],
        coherence_z=t["coherence_z"][()], coherence_likeness=t["coherence_likeness"][()],
        coherence_size=t["coherence_size"][()], coherence_group=t["coherence_group"][()], trigger_match=f["scores/trigger_match"][()],
        trigger_class=int(f["scores/trigger_match"].attrs["class"]),
    )


def read_target_attrs(f: h5py.File) -> dict:
    """/target's attributes as plain values, with the vote per class and the number of isolated samples."""
    out = {k: plain_value(v) for k, v in f["target"].attrs.items()}
    out["votes"] = np.asarray(f["target/votes"][()]).tolist()
    out["num_isolated"] = int(f["target/isolated"].shape[0])
    return out


def read_target_of(path: Path) -> dict:
    """read_target_attrs of a detect-target or split artifact on disk."""
    with open_artifact(path) as f:
        return read_target_attrs(f)


def read_verdict(f: h5py.File, n: int) -> tuple[dict | None, np.ndarray | None, np.ndarray | None]:
    """(/verdict attributes, the suspicious list as a mask, /scores/suspicion); None where absent."""
    suspicion = np.asarray(f["scores/suspicion"][()], dtype=np.float64) if "scores/suspicion" in f else None
    if "verdict" not in f:
        return None, None, suspicion
    attrs = {k: plain_value(v) for k, v in f["verdict"].attrs.items()}
    for k in ("inputs", "evidence"):  # stored as JSON text
        if k in attrs:
            attrs[k] = json.loads(attrs[k])
    mask = None
    if "verdict/suspicious_index" in f:
        idx = np.asarray(f["verdict/suspicious_index"][()], dtype=np.int64)
        if len(idx) and (idx.min() < 0 or idx.max() >= n):
            raise BadInputError(f"{f.filename}: /verdict/suspicious_index points outside the {n} samples. "
                                "The file is damaged; re-run the command that wrote it.")
        mask = np.zeros(n, dtype=bool)
        mask[idx] = True
    return attrs, mask, suspicion


def read_evidence(path: Path) -> Evidence:
    """What the verdict was decided on, from a detect-target or split artifact (calibration reads
    stored runs again with other thresholds)."""
    with open_artifact(path) as f:
        indicator = f["scores/indicator"][()] if "scores/indicator" in f else None
        return evidence_of(read_estimate(f), f["samples/label"][()], int(f["target"].attrs["target"]), indicator)


def write_target(path: Path, est: TargetEstimate, ds: ImageDataset, cfg: Config, device: str,
                 verdict: Verdict) -> None:
    """detect-target's artifact: ỹ_t with its votes and evidence, the warm-up losses (ALS scores)
    and the warmed-up altruistic model, so `split --target-from` continues from it."""
    with atomic_h5(path) as f:
        write_provenance(f, "target", cfg, ds, device)
        write_estimate(f, est, ds.classes, est.target, "lga", verdict)
        write_tensors(f.create_group("weights/altruistic"), est.altruistic_state)
        write_optimizer(f.create_group("optimizer/altruistic"), est.optimizer_state)


def _check_altruistic_net(made: dict, cfg: Config, path: Path) -> None:
    """The artifact's g_φ weights load only into the net they were trained on."""
    (arch, width), (now_arch, now_width) = altruistic_net_of(made), cfg.altruistic_net
    if made.get("image_size") != cfg.image_size:
        raise BadInputError(
            f"{path}: its altruistic model works at {made.get('image_size')} px, this run at {cfg.image_size} px. "
            "Run split with the image_size (and image_size_cap) detect-target used, or re-run detect-target.")
    if (arch, width) != (now_arch, now_width):
        raise BadInputError(
            f"{path}: its altruistic model is {arch} width {width:g} (preset {made.get('preset')}), this run's is "
            f"{now_arch} width {now_width:g} (preset {cfg.preset}). Run split with the preset and settings "
            "detect-target used, or re-run detect-target.")


def read_target(path: Path, ds: ImageDataset, cfg: Config | None = None) -> TargetEstimate:
    """Load a detect-target artifact for this dataset (fingerprint checked; with ``cfg``, also that
    its altruistic model is the net this config would train on)."""
    with open_artifact(path, "target") as f:
        try:
            check_fingerprint(f, ds, path)
            if cfg is not None:
                _check_altruistic_net(config_of(f), cfg, path)
            est = read_estimate(f)
            est.altruistic_state = read_tensors(f["weights/altruistic"])
            est.optimizer_state = read_optimizer(f["optimizer/altruistic"])
            return est
        except KeyError as exc:
            raise BadInputError(f"{path}: incomplete target artifact (missing {exc}). Re-run detect-target.") from exc
        except (OSError, RuntimeError, ValueError) as exc:  # h5py's errors for damaged metadata or data
            raise BadInputError(f"{path}: damaged target artifact ({exc}). Re-run detect-target.") from exc


def plain_value(value):
    """An HDF5 attribute as a plain Python value (numpy scalars and bytes are not JSON-friendly)."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
