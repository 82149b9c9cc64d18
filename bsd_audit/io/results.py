"""The target and split artifacts: what each command writes, and how it is read back."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import h5py
import numpy as np

from ..config import altruistic_net_of
from ..errors import BadInputError
from ..method.bsd import SplitResult
from ..method.target import TargetEstimate
from .artifacts import (atomic_h5, check_fingerprint, config_of, open_artifact, read_optimizer, read_tensors,
                        write_optimizer, write_provenance, write_tensors)


def _write_target(g: h5py.Group, est: TargetEstimate, classes: list[str], used: int, source: str) -> None:
    g.attrs.update({
        "target": used, "target_name": classes[used], "source": source,
        "lga_target": est.target, "lga_target_name": classes[est.target], "confidence": est.confidence,
        "second_likely_target": est.second_likely_target, "second_likely_name": classes[est.second_likely_target],
        "agree": est.agree, "isolated_loss_mean": est.isolated_loss_mean, "loss_median": est.loss_median,
        "loss_gap": est.loss_gap,
    })
    g.create_dataset("votes", data=est.votes)
    g.create_dataset("isolated", data=est.isolated)
    g.create_dataset("second_likely_per_epoch", data=est.second_likely_per_epoch)
    g.create_dataset("warmup_objective", data=np.array(est.history, dtype=np.float64))


def write_verdict(f: h5py.File, verdict) -> None:
    """/verdict: the attack-present answer with every input, /verdict/suspicious_index the list, and
    /scores/suspicion (high = suspicious) for ranking."""
    g = f.create_group("verdict")
    g.attrs.update({"verdict": verdict.verdict, "attack_present": verdict.verdict == "poisoned",
                    "score": verdict.score, "reason": verdict.reason, "inputs": _json(verdict.inputs)})
    g.create_dataset("suspicious_index", data=np.flatnonzero(verdict.suspicious))
    f["scores"].create_dataset("suspicion", data=verdict.suspicion)


def write_target_artifact(path: Path, est: TargetEstimate, ds, cfg, device: str, verdict=None) -> None:
    """detect-target's artifact: ỹ_t with its votes and evidence, the warm-up losses (ALS scores)
    and the warmed-up altruistic model, so `split --target-from` continues from it."""
    with atomic_h5(path) as f:
        write_provenance(f, "target", cfg, ds, device)
        _write_target(f.create_group("target"), est, ds.classes, est.target, "lga")
        s = f.create_group("scores")
        s.create_dataset("lga_ce", data=est.ce)
        s.create_dataset("als", data=est.sce)
        if est.fit_rank is not None:
            s.create_dataset("fit_rank", data=est.fit_rank)
        if verdict is not None:
            write_verdict(f, verdict)
        write_tensors(f.create_group("weights/altruistic"), est.altruistic_state)
        write_optimizer(f.create_group("optimizer/altruistic"), est.optimizer_state)


def _check_altruistic_net(made: dict, cfg, path: Path) -> None:
    """The artifact's g_φ weights load only into the net they were trained on."""
    (arch, width), (now_arch, now_width) = altruistic_net_of(made), cfg.altruistic_net
    if (arch, width) != (now_arch, now_width):
        raise BadInputError(
            f"{path}: its altruistic model is {arch} width {width:g} (preset {made.get('preset')}), this run's is "
            f"{now_arch} width {now_width:g} (preset {cfg.preset}). Run split with the preset and settings "
            "detect-target used, or re-run detect-target.")


def read_target_artifact(path: Path, ds, cfg=None) -> TargetEstimate:
    """Load a detect-target artifact for this dataset (fingerprint checked; with ``cfg``, also that
    its altruistic model is the net this config would train on)."""
    with open_artifact(path, "target") as f:
        try:
            check_fingerprint(f, ds, path)
            if cfg is not None:
                _check_altruistic_net(config_of(f), cfg, path)
            t = f["target"]
            return TargetEstimate(
                target=int(t.attrs["lga_target"]), votes=t["votes"][()], confidence=float(t.attrs["confidence"]),
                isolated=t["isolated"][()], isolated_loss_mean=float(t.attrs["isolated_loss_mean"]),
                loss_median=float(t.attrs["loss_median"]), second_likely_per_epoch=t["second_likely_per_epoch"][()],
                second_likely_target=int(t.attrs["second_likely_target"]), ce=f["scores/lga_ce"][()],
                sce=f["scores/als"][()], fit_rank=f["scores/fit_rank"][()] if "scores/fit_rank" in f else None,
                altruistic_state=read_tensors(f["weights/altruistic"]),
                optimizer_state=read_optimizer(f["optimizer/altruistic"]),
                history=list(t["warmup_objective"][()]),
            )
        except KeyError as exc:
            raise BadInputError(f"{path}: incomplete target artifact (missing {exc}). Re-run detect-target.") from exc
        except (OSError, RuntimeError, ValueError) as exc:  # h5py's errors for damaged metadata or data
            raise BadInputError(f"{path}: damaged target artifact ({exc}). Re-run detect-target.") from exc


def write_split_artifact(path: Path, res: SplitResult, est: TargetEstimate, target_source: str, ds, cfg,
                         device: str, truth: np.ndarray | None, summary: dict, verdict=None) -> None:
    with atomic_h5(path) as f:
        write_provenance(f, "split", cfg, ds, device)
        _write_target(f.create_group("target"), est, ds.classes, res.target, target_source)
        s = f.create_group("scores")
        s.create_dataset("oss", data=res.oss_scores)  # NaN outside D_t
        s.create_dataset("als", data=res.als_scores)
        s.create_dataset("indicator", data=res.indicator)
        s.create_dataset("lga_ce", data=est.ce)
        if est.fit_rank is not None:
            s.create_dataset("fit_rank", data=est.fit_rank)
        s.attrs["direction"] = "high = clean for oss, als, indicator; low = fitted early for fit_rank; high = suspicious for suspicion"
        if verdict is not None:
            write_verdict(f, verdict)
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
        f.attrs["summary"] = _json(summary)


def _json(obj) -> str:
    import json
    return json.dumps(obj, sort_keys=True)
