"""The commands as functions: load data, run the method's stages, write artifacts, return a typed result.

The CLI parses options and prints; everything it runs is here, callable from Python::

    from pathlib import Path
    from bsd_audit.api import split
    from bsd_audit.config import resolve_config
    result = split(Path("data"), Path("split.h5"), resolve_config("cpu"))
    result.verdict.verdict, result.to_dict()   # "poisoned" | "clean" | "inconclusive", the JSON summary

``find_poisoned`` audits images that are already in memory, with no files at all.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .artifacts.checkpoint import RunCheckpoints, RunState, check_ranks_see, describe_checkpoint
from .artifacts.metrics import write_metrics
from .artifacts.model import LoadedModel, load_model, write_model
from .artifacts.outputs import check_output, is_artifact, output_lock
from .artifacts.split import read_split, write_split
from .artifacts.target import read_target, write_target
from .attacks.manifest import backdoor_targets, poisoned_mask, read_manifest
from .config import Config, lga_epochs, resolve_config
from .data import ImageDataset, Normalizer, load_imagefolder, scan_tree
from .data.cache import resolve_cache_dir
from .data.imagefolder import ScannedTree, load_with_classes
from .data.memory import as_uint8_nchw, dataset_from_arrays
from .data.sizes import SizeSurvey, array_survey, survey_sizes
from .errors import BadInputError, TrainingDivergedError
from .method.bsd import SplitResult, exclude_final_list, run_bsd
from .method.purify import MODES, train_model, unlabelled_prior
from .method.coherence import trigger_coherence
from .method.holdout import group_variety, holdout_check
from .method.target import TargetEstimate, detect_target as run_warmup
from .method.verdict import Verdict, VerdictSummary, attack_verdict, evidence_of
from .metrics import (accuracy, attack_success_rate, confusion_matrix, defence_effectiveness_ratio,
                      per_class_accuracy, precision_at_recall, split_quality)
from .report.gate import ModelGate, model_gate
from .training.distributed import barrier, is_main, world
from .training.loops import predict
from .training.progress import Progress
from .training.runtime import Runtime, make_runtime, seed_everything


# ---------------------------------------------------------------------------------- results
@dataclass(kw_only=True)
class TargetChoice:
    """The target the split used and both estimates of it (flat in the JSON summary)."""

    target: int
    target_name: str
    source: str  # lga | user | artifact
    lga_target: int
    lga_target_name: str
    votes: dict[str, int]  # per class, among the isolated samples
    confidence: float  # the LGA winner's share of the vote
    second_likely_target: int
    second_likely_name: str
    agree: bool  # the two estimates name the same class
    loss_gap: float


@dataclass
class Resumed:
    phase: str  # target | bsd | purify
    epoch: int
    settings_changed: dict


SUMMARY_SCHEMA = 1  # of every command's JSON summary: fields are only ever added, never renamed or removed


class _Result:
    _OMIT_IF_NONE: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The JSON summary the CLI prints (--json) and the split artifact stores."""
        d = dataclasses.asdict(self)  # type: ignore[call-overload]
        return {k: v for k, v in d.items() if not (v is None and k in self._OMIT_IF_NONE)}


@dataclass(kw_only=True)
class _AuditReport(TargetChoice, _Result):
    """What detect-target's and split's summaries share: the data, the target, the verdict."""

    command: str
    schema: int = SUMMARY_SCHEMA
    artifact: str
    num_samples: int
    classes: list[str]
    empty_classes: list[str]  # class folders without images, left out of the audit
    skipped_bad_files: list[dict[str, str]]  # {path, error} of each file --skip-bad-files left out
    warnings: list[str]  # what the user should know before trusting the result, one sentence each
    fingerprint: str
    device: dict[str, Any]  # type (cpu | cuda), name, index, threads, ranks
    image_sizes: SizeSurvey  # the images' native sizes, the working size chosen and the shrink
    verdict: VerdictSummary
    resumed_from: Resumed | None
    wall_time_s: float = 0.0


@dataclass(kw_only=True)
class DetectTargetReport(_AuditReport):
    command: str = "detect-target"


@dataclass(kw_only=True)
class SplitReport(_AuditReport):
    _OMIT_IF_NONE = ("truth",)
    command: str = "split"
    clean_size: int
    poison_size: int
    clean_share: float
    clean_per_class: dict[str, int]
    truth: dict[str, Any] | None = None  # split quality against a benchmark's ground truth (--truth)


@dataclass(kw_only=True)
class TrainCleanReport(_Result):
    command: str = "train-clean"
    schema: int = SUMMARY_SCHEMA
    artifact: str
    mode: str
    arch: str
    width: float
    epochs: int
    init: str  # scratch | split main model
    resumed_from: Resumed | None  # phase purify
    num_samples: int
    labelled: int
    unlabelled: int
    target_name: str | None
    split: str | None
    fingerprint: str
    device: dict[str, Any]  # type (cpu | cuda), name, index, threads, ranks
    final_loss: float
    wall_time_s: float = 0.0


@dataclass(kw_only=True)
class EvaluateReport(_Result):
    _OMIT_IF_NONE = ("triggered", "num_triggered", "asr", "target_name", "target_source", "baseline", "der",
                     "split_quality")
    command: str = "evaluate"
    schema: int = SUMMARY_SCHEMA
    model: str
    mode: str
    arch: str
    classes: list[str]
    test: str
    num_test: int
    ca: float | None  # percent
    per_class_accuracy: dict[str, float | None]
    confusion: list[list[int]]
    device: dict[str, Any]  # type (cpu | cuda), name, index, threads, ranks
    triggered: str | None = None
    num_triggered: int | None = None
    asr: float | None = None  # percent
    target_name: str | None = None
    target_source: str | None = None
    baseline: dict[str, Any] | None = None
    der: float | None = None
    split_quality: dict[str, Any] | None = None
    thresholds: ModelGate | None = None
    wall_time_s: float = 0.0


@dataclass
class PoisonFinding:
    """find_poisoned's answer. Every array has one entry per input image, in input order."""

    target: int  # the class the audit examined (ỹ_t)
    target_name: str
    verdict: VerdictSummary  # poisoned | clean | inconclusive, with its reason and inputs
    suspicious: np.ndarray  # indices of the suspicious list, most suspicious first
    suspicion: np.ndarray  # per image, high = suspicious (0 outside the target class)
    clean: np.ndarray  # bool: in BSD's final clean pool (safe to train on)
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # oss, als, indicator: high = clean
    image_sizes: SizeSurvey | None = None  # the images' size, the working size and the shrink


# ---------------------------------------------------------------------------------- configuration
@dataclass
class Configured:
    cfg: Config
    tree: ScannedTree | None  # the scanned data tree, when one was given (the commands reuse it)


def configure(preset: str = "auto", overrides: dict[str, Any] | None = None, config_file: Path | None = None,
              data: Path | None = None) -> Configured:
    """The resolved config; with ``preset="auto"`` the number of images under ``data`` picks the
    preset, and the scan that counted them is handed on so the command does not scan again."""
    if preset != "auto":  # the settings are checked before the data is read
        cfg = resolve_config(preset, overrides, config_file)
        return Configured(cfg, scan_tree(data) if data is not None else None)
    tree = scan_tree(data) if data is not None else None
    return Configured(resolve_config(preset, overrides, config_file, None if tree is None else len(tree.paths)), tree)


# ---------------------------------------------------------------------------------- shared steps
def prepare(data: Path, cfg: Config, progress: Progress, tree: ScannedTree | None = None
            ) -> tuple[Runtime, ImageDataset, Normalizer, Config, SizeSurvey]:
    """Device, decoded data, normaliser, and the config at the working size it chose (``image_size``
    auto: from the images' own sizes, data/sizes.py), with the survey that chose it."""
    rt = make_runtime(cfg)
    seed_everything(cfg.seed)
    progress.log(f"device: {rt.describe()}")
    tree = tree or scan_tree(data)
    sizes = survey_sizes(tree.root, tree.paths, cfg.image_size_cap, None if cfg.image_size == "auto" else cfg.image_size)
    cfg = cfg.model_copy(update={"image_size": sizes.working_size})
    progress.log(f"working size {sizes.working_size} px (native short side {sizes.short_side_min}-"
                 f"{sizes.short_side_max} px, median {sizes.short_side_median}; shrink {sizes.shrink:g}x)")
    progress.start("load images", len(tree.paths))
    # Under torchrun the first rank of each machine decodes and fills the decode cache while the
    # others wait, then they read the cache instead of decoding the same files again. (A failed
    # decode releases them too: they meet the same error and stop with it.)
    first = world().local_rank == 0
    if not first:
        barrier()
    try:
        ds = load_imagefolder(data, cfg.image_size, rt.device, cfg.max_image_pixels, progress=progress.advance,
                              tree=tree, store=cfg.data_store, cache_dir=resolve_cache_dir(cfg.cache_dir),
                              log=progress.log, skip_bad=cfg.skip_bad_files)
    finally:
        if first:
            barrier()
    progress.finish()
    if ds.skipped:
        progress.log(f"skipped {len(ds.skipped)} non-image entries (first: {ds.skipped[0]})")
    progress.log(f"{len(ds)} images, {ds.num_classes} classes, fingerprint {ds.fingerprint[:12]}")
    return rt, ds, _normalizer(ds, rt), cfg, sizes


def _warnings(ds: ImageDataset, sizes: SizeSurvey) -> list[str]:
    out = [f"class folder {name}/ holds no images: it is not a class of this audit (torchvision's ImageFolder "
           "would refuse the tree)" for name in empty_classes(ds)]
    if ds.bad_files:
        out.append(f"{len(ds.bad_files)} unusable file(s) were left out (--skip-bad-files), first "
                   f"{ds.bad_files[0][0]}; every one is listed under skipped_bad_files")
    if sizes.warning:
        out.append(sizes.warning)
    return out


def _bad_files(ds: ImageDataset) -> list[dict[str, str]]:
    return [{"path": rel, "error": why} for rel, why in ds.bad_files]


def empty_classes(ds: ImageDataset) -> list[str]:
    """Class folders of the tree that hold no image (torchvision's ImageFolder would refuse the tree)."""
    return [e.removesuffix("/ (no images)") for e in ds.skipped if e.endswith("/ (no images)")]


def _normalizer(ds: ImageDataset, rt: Runtime) -> Normalizer:
    mean, std = ds.channel_stats()
    return Normalizer(mean, std, rt.device, rt.channels_last)


def _claim(out: Path, what: str, kind: str, progress: Progress, force: bool, trees: list[Path | None],
           inputs: list[Path | None] = ()) -> None:
    """Check ``out`` before any work (artifacts/outputs.py): refused inside an image folder of
    ``trees``, as one of ``inputs``, or over a file of another kind without ``force``; a replaced
    output is logged."""
    note = check_output(out, what, is_artifact(kind), inputs, trees, force)
    if note:
        progress.log(note)


def checkpoint_path(out: Path) -> Path:
    """Where the training commands keep their per-epoch checkpoint: beside the output file."""
    out = Path(out)
    return out.with_name(out.stem + ".ckpt.h5")


def _target_choice(est: TargetEstimate, classes: list[str], used: int, source: str) -> dict[str, Any]:
    return dict(
        target=used, target_name=classes[used], source=source, lga_target=est.target,
        lga_target_name=classes[est.target], votes={c: int(v) for c, v in zip(classes, est.votes)},
        confidence=round(est.confidence, 4), second_likely_target=est.second_likely_target,
        second_likely_name=classes[est.second_likely_target], agree=est.agree, loss_gap=round(est.loss_gap, 4),
    )


def judge(est: TargetEstimate, labels: np.ndarray, target: int, indicator: np.ndarray | None = None,
          classes: list[str] | None = None) -> Verdict:
    """The attack-present verdict and the suspicious list from the warm-up's evidence (method/verdict.py),
    with the split's indicator I (attack_verdict leaves it out until the split reached stage 2)."""
    return attack_verdict(evidence_of(est, labels, target, indicator, classes))


def _resume_state(ckpt: RunCheckpoints, resume: bool, progress: Progress) -> RunState | None:
    """The state a checkpoint holds (None without one); with ``resume`` false the stale file is
    deleted, so that it is not resumed later either. Under torchrun every rank must see the same."""
    if not resume:
        _discard(ckpt.path)
        return None
    state = ckpt.resume()
    check_ranks_see(ckpt.path, None if state is None else (state.phase, state.epoch))
    if state is not None:
        progress.log(f"resumed from {ckpt.path}, {describe_checkpoint(ckpt.path)}"
                     + "".join(f"; {k} {a:g} -> {b:g}" for k, (a, b) in state.changed.items()))
    return state


def _resumed(state: RunState | None) -> Resumed | None:
    return None if state is None else Resumed(state.phase, state.epoch, state.changed)


def _discard(path: Path | None) -> None:
    """Delete a checkpoint; under torchrun rank 0 does it, as it alone writes files."""
    if path is not None and is_main():
        Path(path).unlink(missing_ok=True)


def _digest(values: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(values).tobytes()).hexdigest()[:16]


@contextlib.contextmanager
def _keeping_checkpoint(ckpt: Path):
    """An output that cannot be written (a full disk) leaves the finished run's checkpoint: say so,
    since running the same command again then only writes the output."""
    try:
        yield
    except BadInputError as exc:
        if not ckpt.exists():
            raise
        raise BadInputError(f"{exc} The finished run is kept in its checkpoint, {ckpt}: run the same command "
                            "again (same --out) and it writes the output without training again.") from exc


@contextlib.contextmanager
def _naming_checkpoint(ckpt: Path | None):
    """A diverged run's error names the checkpoint it leaves behind (the last good epoch's)."""
    try:
        yield
    except TrainingDivergedError as exc:
        if ckpt is not None and ckpt.exists():
            exc.checkpoint, exc.checkpoint_epochs = ckpt, describe_checkpoint(ckpt)
        raise


def load_truth(manifest: Path, ds: ImageDataset) -> np.ndarray:
    """Ground-truth poison mask of ``ds`` from a benchmark manifest (paths relative to the data root)."""
    truth = poisoned_mask(manifest, ds.paths)
    missing = len(read_manifest(manifest)["poisoned"]) - int(truth.sum())
    if missing:
        raise BadInputError(f"{manifest}: {missing} poisoned path(s) are not in {ds.root} "
                            "(is DATA the benchmark's train/ folder?).")
    return truth


# ---------------------------------------------------------------------------------- detect-target
def _warm_up(ds: ImageDataset, norm: Normalizer, cfg: Config, rt: Runtime, gen: torch.Generator, ckpt: RunCheckpoints,
             state: RunState | None, progress: Progress) -> TargetEstimate:
    """Stage 0 (the altruistic warm-ups and ỹ_t) and the verdict's held-out check on its fit ranks."""
    progress.start("altruistic warm-up (LGA)", lga_epochs(cfg, len(ds)))
    est = run_warmup(ds, norm, cfg, rt, gen, progress, resume=state.warmup if state else None,
                     maybe_checkpoint=ckpt.warmup_epoch)
    progress.finish()
    if cfg.holdout_epochs:
        progress.start("held-out check", cfg.holdout_epochs)
    est.holdout_prob, est.holdout_called, est.holdout_called_prob = holdout_check(ds, norm, cfg, rt, est.fit_rank, progress)
    est.holdout_share = cfg.holdout_share
    est.copy_of = ds.copy_of()
    est.holdout_variety = group_variety(ds, ds.labels.cpu().numpy(), est.fit_rank, est.holdout_prob, est.holdout_share,
                                        est.copy_of, cfg.seed)
    co = trigger_coherence(ds, ds.labels.cpu().numpy(), est.fit_rank, est.holdout_prob, est.holdout_called,
                           est.holdout_share, est.copy_of, cfg.seed)
    est.coherence_z, est.coherence_likeness, est.coherence_size = co.z, co.likeness, co.size
    est.coherence_group = co.group
    est.trigger_match, est.trigger_class = co.match, co.match_class
    if cfg.holdout_epochs:
        progress.finish()
    return est


def detect_target(data: Path, out: Path, cfg: Config, progress: Progress | None = None, resume: bool = True,
                  after_epoch: Callable[[str, int], None] | None = None, tree: ScannedTree | None = None,
                  force: bool = False) -> DetectTargetReport:
    """Stage 0 alone: estimate ỹ_t and write the target artifact.

    Like split, it writes a checkpoint beside ``out`` at the end of every warm-up epoch (split's
    ``target`` phase); with ``resume`` a run started again continues from it and writes the artifact
    an uninterrupted run would. The checkpoint is deleted once ``out`` is written."""
    progress = progress or Progress()
    _claim(out, "target artifact", "target", progress, force, [data])
    with output_lock(out):
        t0 = time.perf_counter()
        rt, ds, norm, cfg, sizes = prepare(data, cfg, progress, tree)
        gen = rt.generator(cfg.seed)
        # the numpy generator is unused by the warm-up; the checkpoint keeps one for every phase
        ckpt = RunCheckpoints(checkpoint_path(out), {"command": "detect-target"}, cfg, ds, rt.describe(), gen,
                              np.random.default_rng(cfg.seed), after_epoch)
        state = _resume_state(ckpt, resume, progress)  # a split's checkpoint is refused: its identity differs
        with _naming_checkpoint(ckpt.path):
            est = _warm_up(ds, norm, cfg, rt, gen, ckpt, state, progress)
        v = judge(est, ds.labels.cpu().numpy(), est.target, classes=ds.classes)
        report = DetectTargetReport(
            artifact=str(out), num_samples=len(ds), classes=ds.classes, empty_classes=empty_classes(ds),
            skipped_bad_files=_bad_files(ds), warnings=_warnings(ds, sizes), fingerprint=ds.fingerprint, device=rt.info(),
            image_sizes=sizes,
            **_target_choice(est, ds.classes, est.target, "lga"), verdict=v.summary(),
            resumed_from=_resumed(state), wall_time_s=round(time.perf_counter() - t0, 2))
        with _keeping_checkpoint(ckpt.path):
            write_target(out, est, ds, cfg, rt.describe(), v)
        _discard(ckpt.path)  # the artifact now holds the result the checkpoint led to
        return report


# ---------------------------------------------------------------------------------- split
@dataclass
class _Audit:
    """What a whole BSD run on one dataset produced, before anything is written."""

    est: TargetEstimate
    used: int
    source: str
    res: SplitResult
    verdict: Verdict


def _audit(ds: ImageDataset, norm: Normalizer, cfg: Config, rt: Runtime, ckpt: RunCheckpoints,
           state: RunState | None, progress: Progress, target: str | None = None, est: TargetEstimate | None = None,
           truth: np.ndarray | None = None) -> _Audit:
    """Target (given, read, or detected), pool initialisation, pool updates to T3, the verdict."""
    if est is not None:
        source = "artifact"
    elif state is not None and state.estimate is not None:
        est, source = state.estimate, "lga"  # the warm-up was over when the run stopped
    else:
        est, source = _warm_up(ds, norm, cfg, rt, ckpt.gen, ckpt, state, progress), "lga"
    labels = ds.labels.cpu().numpy()
    used, source, first = split_target(est, labels, ds.classes, target, source)
    progress.log(f"target: {ds.classes[used]} ({source}; LGA vote {ds.classes[est.target]} "
                 f"at {est.confidence:.0%}, second-likely {ds.classes[est.second_likely_target]})")
    ckpt.estimate = est
    listed = first.suspicious if cfg.exclude_suspicious else None
    res = run_bsd(ds, norm, cfg, rt, est, used, ckpt.gen, ckpt.rng, truth, progress,
                  resume=state.bsd if state else None, maybe_checkpoint=ckpt.bsd_epoch, excluded=listed)
    progress.finish()
    v = judge(est, labels, used, res.indicator, ds.classes)
    if cfg.exclude_suspicious:  # the final list reads I as well: what it adds leaves the clean pool too
        exclude_final_list(res, v.suspicious, labels, ds.num_classes, truth)
    return _Audit(est, used, source, res, v)


def split_target(est: TargetEstimate, labels: np.ndarray, classes: list[str], target: str | None,
                 source: str) -> tuple[int, str, Verdict]:
    """The class the split is built around, where that choice came from, and the warm-up's verdict on it.
    The user's ``target`` wins; else the vote's class, unless the warm-up's evidence says the vote was
    wrong (``target_in_doubt``: the held-out check found a trigger group in another class, and the
    vote's class shows none). Then the split is built around that class (source ``holdout``): around
    the wrong class, the main model's warm-up would learn the trigger from the real target's poison
    and the split would leave it in the clean pool (Blended α 0.1 at 5 %: 13 of 125 left)."""
    if target is not None:
        used = classes.index(target)
        return used, "user", judge(est, labels, used, classes=classes)
    first = judge(est, labels, est.target, classes=classes)
    if first.target_in_doubt:
        return first.suspected, "holdout", judge(est, labels, first.suspected, classes=classes)
    return est.target, source, first


def split(data: Path, out: Path, cfg: Config, target: str | None = None, target_from: Path | None = None,
          truth_manifest: Path | None = None, progress: Progress | None = None, resume: bool = True,
          after_epoch: Callable[[str, int], None] | None = None, tree: ScannedTree | None = None,
          force: bool = False) -> SplitReport:
    """Full BSD: target (detected, read from a detect-target artifact, or given), pool
    initialisation, pool updates to T3. Writes the split artifact and returns its summary.

    A checkpoint beside ``out`` (checkpoint_path) is written at the end of every epoch of the
    warm-up and of Algorithm 1; with ``resume``, a run started again continues from it and ends
    with the same pools and weights as a run that never stopped. It is deleted once ``out`` is
    written. ``after_epoch(phase, epoch)`` runs once an epoch's checkpoint is on disk."""
    progress = progress or Progress()
    _claim(out, "split artifact", "split", progress, force, [data], [target_from, truth_manifest])
    with output_lock(out):
        t0 = time.perf_counter()
        rt, ds, norm, cfg, sizes = prepare(data, cfg, progress, tree)
        truth = load_truth(truth_manifest, ds) if truth_manifest else None
        if target is not None and target not in ds.classes:
            raise BadInputError(f"--target {target!r} is not a class of {ds.root}; classes: {', '.join(ds.classes)}")
        est = read_target(target_from, ds, cfg) if target_from is not None else None
        warnings = _warnings(ds, sizes)
        if est is not None:
            progress.log(f"target estimate read from {target_from}")
            if target is not None and target != ds.classes[est.target]:
                warnings.append(f"--target {target} is used: it wins over {target_from}, whose vote named "
                                f"{ds.classes[est.target]} (that artifact's warm-up is still reused)")
        # what, besides data and config, makes two runs the same run: a checkpoint of another is refused
        identity = {"command": "split", "target": target, "target_from_als": None if est is None else _digest(est.sce),
                    "truth": None if truth is None else _digest(truth)}
        ckpt = RunCheckpoints(checkpoint_path(out), identity, cfg, ds, rt.describe(), rt.generator(cfg.seed),
                              np.random.default_rng(cfg.seed), after_epoch)
        state = _resume_state(ckpt, resume, progress)
        with _naming_checkpoint(ckpt.path):
            a = _audit(ds, norm, cfg, rt, ckpt, state, progress, target, est, truth)
        labels, clean = ds.labels.cpu().numpy(), a.res.clean
        report = SplitReport(
            artifact=str(out), num_samples=len(ds), classes=ds.classes, empty_classes=empty_classes(ds),
            skipped_bad_files=_bad_files(ds), warnings=warnings, fingerprint=ds.fingerprint, device=rt.info(),
            image_sizes=sizes, **_target_choice(a.est, ds.classes, a.used, a.source), clean_size=int(clean.sum()),
            poison_size=int((~clean).sum()), clean_share=round(float(clean.mean()), 4),
            clean_per_class={c: int(n) for c, n in zip(ds.classes, np.bincount(labels[clean], minlength=ds.num_classes))},
            resumed_from=_resumed(state), verdict=a.verdict.summary(),
            truth=None if truth is None else _truth_figures(a.res, a.verdict, truth))
        report.wall_time_s = round(time.perf_counter() - t0, 2)
        with _keeping_checkpoint(ckpt.path):
            write_split(out, a.res, a.est, a.source, ds, cfg, rt.describe(), truth, report.to_dict(), a.verdict)
        _discard(ckpt.path)  # the artifact now holds the result the checkpoint led to
        return report


def _truth_figures(res: SplitResult, v: Verdict, truth: np.ndarray) -> dict[str, Any]:
    """Split quality against ground truth (metrics.split_quality), the initial pools' leak, and the
    suspicious list's precision and recall."""
    out = split_quality(res.clean, truth, {"oss": res.oss_scores, "als": res.als_scores, "indicator": res.indicator})
    out["poison_in_clean_init"] = int((res.clean_init & truth).sum())
    n_poison, flagged = int(truth.sum()), v.suspicious
    out["suspicious_precision"] = round(float(truth[flagged].mean()), 4) if flagged.any() else None
    out["suspicious_recall"] = round(int((truth & flagged).sum()) / n_poison, 4) if n_poison else None
    p90 = precision_at_recall(v.suspicion, truth, 0.9)  # the ranking itself, whatever the list's cut
    out["suspicion_precision_at_recall_0.9"] = None if p90 is None else round(p90, 4)
    return out


# ---------------------------------------------------------------------------------- in memory
def find_poisoned(images, labels, classes: list[str] | None = None, cfg: Config | None = None,
                  target: str | None = None, progress: Progress | None = None) -> PoisonFinding:
    """Audit images held in memory: the whole BSD split, then the verdict, with no file written.

    ``images``: N x 3 x H x W or N x H x W x 3, numpy or torch, uint8 (0-255) or float (0-1); resized
    to ``cfg.image_size`` when they are another size. ``labels``: N class indices (the labels you
    would train on, which is what an attacker poisons). ``classes``: names for the indices (default
    "0", "1", ...). ``cfg``: the resolved config (default: the ``cpu`` preset, minutes on a CPU for a
    few thousand images); ``cfg.seed`` makes the result repeatable. ``target``: the attack's target
    class name, when known. The result's ``suspicious`` lists the images to look at first; ``clean``
    marks the images BSD would train a purified model on."""
    cfg = cfg or resolve_config("cpu")
    progress = progress or Progress()
    rt = make_runtime(cfg)
    seed_everything(cfg.seed)
    x = as_uint8_nchw(images)
    sizes = array_survey(x.shape[-2], x.shape[-1], cfg.image_size_cap, None if cfg.image_size == "auto" else cfg.image_size)
    cfg = cfg.model_copy(update={"image_size": sizes.working_size})
    ds = dataset_from_arrays(x, labels, classes, cfg.image_size, rt.device)
    if target is not None and target not in ds.classes:
        raise BadInputError(f"target {target!r} is not one of the classes: {', '.join(ds.classes)}")
    ckpt = RunCheckpoints(None, {}, cfg, ds, rt.describe(), rt.generator(cfg.seed), np.random.default_rng(cfg.seed))
    a = _audit(ds, _normalizer(ds, rt), cfg, rt, ckpt, None, progress, target)
    order = np.argsort(-a.verdict.suspicion, kind="stable")
    return PoisonFinding(
        target=a.used, target_name=ds.classes[a.used], verdict=a.verdict.summary(),
        suspicious=order[a.verdict.suspicious[order]], suspicion=a.verdict.suspicion, clean=a.res.clean,
        scores={"oss": a.res.oss_scores, "als": a.res.als_scores, "indicator": a.res.indicator}, image_sizes=sizes)


# ---------------------------------------------------------------------------------- train-clean
def train_clean(data: Path, out: Path, cfg: Config, split_path: Path | None = None, mode: str = "mixmatch",
                resume: bool = True, progress: Progress | None = None,
                after_epoch: Callable[[int], None] | None = None, tree: ScannedTree | None = None,
                force: bool = False) -> TrainCleanReport:
    """Train the purified model on a finished split (or, ``mode="baseline"``, the no-defence model on
    every sample as labelled) and write its weights file. A checkpoint beside ``out`` is written
    every epoch and, with ``resume``, continued when the same command is run again."""
    progress = progress or Progress()
    if mode not in MODES:
        raise BadInputError(f"--mode {mode!r}: choose one of {', '.join(MODES)}")
    if mode != "baseline" and split_path is None:
        raise BadInputError("train-clean needs --split SPLIT.h5 (from `bsd-audit split`), or --baseline for "
                            "the no-defence model")
    _claim(out, "model file", "model", progress, force, [data], [split_path])
    with output_lock(out):
        t0 = time.perf_counter()
        rt, ds, norm, cfg, sizes = prepare(data, cfg, progress, tree)
        clean, target, split_created, init_state, init, prior = None, -1, "", None, "scratch", None
        if mode != "baseline":
            sp = read_split(split_path, ds, main_weights=cfg.purify_init == "split")
            clean, target, split_created = sp.clean, sp.target_index, sp.created
            progress.log(f"split {split_path}: clean pool {int(clean.sum())} of {len(ds)}, target {ds.classes[target]}")
            if cfg.purify_init == "split":
                init_state, init = _split_main_model(sp.main_state, sp.config, cfg, progress)
            if cfg.purify_align == "pool" and mode == "mixmatch":
                prior = unlabelled_prior(sp.labels, clean, sp.suspicious, ds.num_classes)
                if prior is not None:
                    progress.log("MixMatch's guesses follow the unlabelled pool's class shares (purify_align=pool)")
        identity = {"command": "train-clean", "mode": mode, "split_created": split_created, "init": init}
        ckpt = RunCheckpoints(checkpoint_path(out), identity, cfg, ds, rt.describe(), rt.generator(cfg.seed),
                              np.random.default_rng(cfg.seed),
                              None if after_epoch is None else (lambda phase, epoch: after_epoch(epoch)))
        state = _resume_state(ckpt, resume, progress)
        with _naming_checkpoint(ckpt.path):
            res = train_model(ds, norm, cfg, rt, mode, clean, ckpt.gen, ckpt.rng, progress, init_state,
                              resume=state.purify if state else None, maybe_checkpoint=ckpt.purify_epoch,
                              guess_prior=prior, target=target)
        report = TrainCleanReport(
            artifact=str(out), mode=mode, arch=cfg.arch, width=cfg.width, epochs=cfg.purify_epochs, init=init,
            resumed_from=_resumed(state), num_samples=len(ds),
            labelled=len(ds) if clean is None else int(clean.sum()),
            unlabelled=0 if clean is None or mode != "mixmatch" else int((~clean).sum()),
            target_name=ds.classes[target] if target >= 0 else None, split=None if split_path is None else str(split_path),
            fingerprint=ds.fingerprint, device=rt.info(), final_loss=round(res.history[-1]["loss"], 4))
        report.wall_time_s = round(time.perf_counter() - t0, 2)
        mean, std = norm.stats  # computed once, in prepare
        with _keeping_checkpoint(ckpt.path):
            write_model(out, res.model, ds, cfg, rt.describe(), mode, mean, std, target,
                        "" if split_path is None else str(split_path), split_created, res.history, report.to_dict())
        _discard(ckpt.path)  # the weights file now holds everything the checkpoint did
        return report


def _split_main_model(state: dict | None, made: dict, cfg: Config, progress: Progress) -> tuple[dict | None, str]:
    """The split's main model, to start the purified model from (config purify_init=split), when it
    is the architecture, width and resolution asked for now; else None (a new model)."""
    same = all(made.get(k) == getattr(cfg, k) for k in ("arch", "width", "image_size"))
    if state is None or not same:
        progress.log(f"the split's main model is {made.get('arch')} width {made.get('width')} at "
                     f"{made.get('image_size')} px, this model {cfg.arch} width {cfg.width} at {cfg.image_size} px: "
                     "training from new weights (purify_init=split needs the same)")
        return None, "scratch"
    progress.log("starting from the split's main model (purify_init=split)")
    return state, "split main model"


# ---------------------------------------------------------------------------------- evaluate
def _predictions(model: LoadedModel, ds: ImageDataset, rt: Runtime) -> np.ndarray:
    norm = Normalizer(model.mean, model.std, rt.device, rt.channels_last)
    return predict(model.module, ds, norm, rt, 512).argmax(1).cpu().numpy()


def _backdoor_labels(labels: np.ndarray, classes: list[str], truth: Path | None, target: str | None,
                     model: LoadedModel) -> tuple[np.ndarray, str, str]:
    """The label the backdoor sends each triggered sample to, and where that came from."""
    if target is not None:
        if target not in classes:
            raise BadInputError(f"--target {target!r} is not a class of the model; classes: {', '.join(classes)}")
        return np.full_like(labels, classes.index(target)), target, "user"
    if truth is not None:
        return (*backdoor_targets(truth, labels, classes), "manifest")
    if model.target >= 0:
        return np.full_like(labels, model.target), classes[model.target], "split estimate"
    raise BadInputError("ASR needs the attack's target: pass --target NAME or --truth MANIFEST "
                        "(a baseline model carries no estimated target).")


def _pct(x: float | None) -> float | None:
    return None if x is None or np.isnan(x) else round(100.0 * x, 2)


def evaluate(model_path: Path, test: Path, triggered: Path | None = None, baseline: Path | None = None,
             truth: Path | None = None, split_path: Path | None = None, target: str | None = None,
             out: Path | None = None, device: str = "auto", min_ca: float | None = None,
             max_asr: float | None = None, progress: Progress | None = None, force: bool = False) -> EvaluateReport:
    """CA, ASR, DER, per-class accuracy and the confusion matrix of a model file; the split's quality
    when a ground-truth manifest is given. Shares are reported in percent. ``min_ca`` / ``max_asr``
    (percent) are CI thresholds: ``report.thresholds.passed`` is False when one is crossed."""
    progress = progress or Progress()
    if out is not None:
        _claim(out, "metrics file", "metrics", progress, force, [test, triggered], [model_path, baseline, split_path, truth])
    if max_asr is not None and triggered is None:
        raise BadInputError("--max-asr needs --triggered TRIGGERED_TEST_SET to measure the ASR")
    t0 = time.perf_counter()
    rt = make_runtime(Config(device=device))
    model = load_model(model_path, rt.device)
    classes, C = model.classes, len(model.classes)
    progress.log(f"model {model_path}: {model.arch} ({model.mode}), {C} classes; device {rt.describe()}")
    test_ds = load_with_classes(test, classes, model.image_size, rt.device, "test")
    y = test_ds.labels.cpu().numpy()
    pred = _predictions(model, test_ds, rt)
    conf = confusion_matrix(pred, y, C)
    ca = accuracy(pred, y)
    report = EvaluateReport(
        model=str(model_path), mode=model.mode, arch=model.arch, classes=classes, test=str(test), num_test=len(test_ds),
        ca=_pct(ca), per_class_accuracy={c: _pct(a) for c, a in zip(classes, per_class_accuracy(conf))},
        confusion=conf.tolist(), device=rt.info())
    asr = None
    trig_ds = trig_pred = backdoor = None
    if triggered is not None:
        trig_ds = load_with_classes(triggered, classes, model.image_size, rt.device, "triggered")
        ty = trig_ds.labels.cpu().numpy()
        backdoor, report.target_name, report.target_source = _backdoor_labels(ty, classes, truth, target, model)
        trig_pred = _predictions(model, trig_ds, rt)
        asr, report.num_triggered = attack_success_rate(trig_pred, ty, backdoor)
        report.triggered, report.asr = str(triggered), _pct(asr)
    if baseline is not None:
        base = load_model(baseline, rt.device)
        if base.classes != classes:
            raise BadInputError(f"{baseline}: baseline has classes {', '.join(base.classes)}, the model "
                                f"{', '.join(classes)}. Pass a baseline trained on the same data.")
        b_ca = accuracy(_predictions(base, test_ds, rt), y)
        report.baseline = {"model": str(baseline), "ca": _pct(b_ca)}
        if trig_ds is not None:
            b_asr, _ = attack_success_rate(_predictions(base, trig_ds, rt), trig_ds.labels.cpu().numpy(), backdoor)
            report.baseline["asr"] = _pct(b_asr)
            report.der = _pct(defence_effectiveness_ratio(b_ca, b_asr, ca, asr))
    split_path = split_path or (Path(model.attrs["split_path"]) if model.attrs.get("split_path") else None)
    if truth is not None and split_path is not None and Path(split_path).exists():
        sp = read_split(split_path)
        mask = poisoned_mask(truth, sp.paths)
        if len(read_manifest(truth)["poisoned"]) and not mask.any():
            raise BadInputError(f"{truth}: none of its poisoned paths are in the split {split_path}. "
                                "Pass the manifest of the data the split was computed on.")
        report.split_quality = {"split": str(split_path), **split_quality(sp.clean, mask, sp.scores)}
    report.thresholds = model_gate(report.ca, report.asr, min_ca, max_asr)
    report.wall_time_s = round(time.perf_counter() - t0, 2)
    if out is not None:
        with output_lock(out):
            write_metrics(out, report.to_dict(), test_ds, pred, conf, trig_ds, trig_pred, model, rt.describe())
    return report
