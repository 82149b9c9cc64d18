"""The engine behind the commands: load data, run the stages, write artifacts, return a summary.

The CLI parses options and formats output; everything it runs is here, callable from Python:

    from bsd_audit.audit import split
    from bsd_audit.config import resolve_config
    summary = split(Path("data"), Path("split.h5"), resolve_config("cpu"))
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from .config import Config, lga_epochs
from .data import ImageDataset, Normalizer, load_imagefolder
from .engine.distributed import barrier, is_main, world
from .engine.progress import Progress
from .engine.runtime import Runtime, make_runtime, seed_everything
from .errors import BadInputError, TrainingDivergedError
from .io.checkpoint import check_ranks_see, describe_checkpoint
from .io.results import read_target_artifact, write_split_artifact, write_target_artifact
from .method.bsd import exclude_final_list, run_bsd
from .metrics import precision_at_recall, split_quality
from .method.target import TargetEstimate, detect_target


def prepare(data: Path, cfg: Config, progress: Progress) -> tuple[Runtime, ImageDataset, Normalizer]:
    rt = make_runtime(cfg)
    seed_everything(cfg.seed)
    progress.log(f"device: {rt.describe()}")
    from .data.cache import resolve_cache_dir
    from .data.imagefolder import scan_tree
    tree = scan_tree(data)
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
                              log=progress.log)
    finally:
        if first:
            barrier()
    progress.finish()
    if ds.skipped:
        progress.log(f"skipped {len(ds.skipped)} non-image entries (first: {ds.skipped[0]})")
    progress.log(f"{len(ds)} images, {ds.num_classes} classes, fingerprint {ds.fingerprint[:12]}")
    mean, std = ds.channel_stats()
    return rt, ds, Normalizer(mean, std, rt.device, rt.channels_last)


def _check_output(out: Path) -> None:
    out = Path(out)
    if out.exists() and out.is_dir():
        raise BadInputError(f"{out}: is a folder. Give --out a file name such as split.h5.")
    if not out.parent.exists():
        raise BadInputError(f"{out.parent}: output folder does not exist. Create it or choose another --out.")


def target_summary(est: TargetEstimate, classes: list[str], used: int, source: str) -> dict:
    return {
        "target": used, "target_name": classes[used], "source": source,
        "lga_target": est.target, "lga_target_name": classes[est.target],
        "votes": {c: int(v) for c, v in zip(classes, est.votes)}, "confidence": round(est.confidence, 4),
        "second_likely_target": est.second_likely_target, "second_likely_name": classes[est.second_likely_target],
        "agree": est.agree, "loss_gap": round(est.loss_gap, 4),
    }


def detect(data: Path, out: Path, cfg: Config, progress: Progress | None = None, resume: bool = True,
           after_epoch=None) -> dict:
    """Stage 0 alone: estimate ỹ_t and write the target artifact.

    Like split, it writes a checkpoint beside ``out`` at the end of every warm-up epoch (split's
    ``target`` phase: with pooled warm-ups stage 0 alone takes minutes at 10,000 images); with
    ``resume`` a run started again continues from it and writes the artifact an uninterrupted run
    would. The checkpoint is deleted once ``out`` is written."""
    from .io.split_checkpoint import SplitCheckpoints

    progress = progress or Progress()
    _check_output(out)
    t0 = time.perf_counter()
    rt, ds, norm = prepare(data, cfg, progress)
    gen = rt.generator(cfg.seed)
    # the numpy generator is unused by the warm-up; the checkpoint format keeps one for split
    ckpt = SplitCheckpoints(checkpoint_path(out), {"command": "detect-target"}, cfg, ds, rt.describe(), gen,
                            np.random.default_rng(cfg.seed), after_epoch)
    state = _resume_state(ckpt, resume, progress)  # a split's checkpoint is refused: its identity differs
    with _naming_checkpoint(ckpt.path):
        progress.start("altruistic warm-up (LGA)", lga_epochs(cfg, len(ds)))
        est = detect_target(ds, norm, cfg, rt, gen, progress, resume=state.warmup if state else None,
                            maybe_checkpoint=ckpt.warmup_epoch)
        progress.finish()
    v = verdict_of(est, ds, est.target)
    summary = {"command": "detect-target", "artifact": str(out), "num_samples": len(ds), "classes": ds.classes,
               "fingerprint": ds.fingerprint, "device": rt.describe(),
               **target_summary(est, ds.classes, est.target, "lga"), "verdict": v.summary(),
               "resumed_from": None if state is None else {"phase": state.phase, "epoch": state.epoch,
                                                           "settings_changed": state.changed},
               "wall_time_s": round(time.perf_counter() - t0, 2)}
    with _keeping_checkpoint(ckpt.path):
        write_target_artifact(out, est, ds, cfg, rt.describe(), v)
    _discard(ckpt.path)  # the artifact now holds the result the checkpoint led to
    return summary


def verdict_of(est: TargetEstimate, ds: ImageDataset, target: int, indicator: np.ndarray | None = None):
    """The attack-present verdict and the suspicious list from the warm-up's evidence (verdict.py)."""
    from .verdict import Evidence, attack_verdict, loss_ranks
    # an estimate from an older artifact has no fit ranks: rank its end-of-warm-up losses instead
    fit_rank = est.fit_rank if est.fit_rank is not None else loss_ranks(est.ce)
    return attack_verdict(Evidence(labels=ds.labels.cpu().numpy(), target=target, fit_rank=fit_rank,
                                   vote_share=est.confidence, estimates_agree=est.agree, loss_gap=est.loss_gap,
                                   indicator=indicator))


def load_truth(manifest: Path, ds: ImageDataset) -> np.ndarray:
    """Ground-truth poison mask from a benchmark manifest (paths relative to the data root)."""
    doc = _read_manifest(manifest)
    try:
        poisoned = set(doc["poisoned"])
    except (KeyError, TypeError) as exc:
        raise BadInputError(f"{manifest}: not a readable benchmark manifest (no list of poisoned paths: {exc}). "
                            "Pass the manifest.json written by `bsd-audit make-benchmark`.") from exc
    truth = np.array([p in poisoned for p in ds.paths])
    missing = len(poisoned) - int(truth.sum())
    if missing:
        raise BadInputError(f"{manifest}: {missing} poisoned path(s) are not in {ds.root} "
                            "(is DATA the benchmark's train/ folder?).")
    return truth


def checkpoint_path(out: Path) -> Path:
    """Where split and train-clean keep their per-epoch checkpoint: beside the output file."""
    out = Path(out)
    return out.with_name(out.stem + ".ckpt.h5")


def split(data: Path, out: Path, cfg: Config, target: str | None = None, target_from: Path | None = None,
          truth_manifest: Path | None = None, progress: Progress | None = None, resume: bool = True,
          after_epoch=None) -> dict:
    """Full BSD: target (detected, read from a detect-target artifact, or given), pool
    initialisation, pool updates to T3. Writes the split artifact and returns its summary.

    A checkpoint beside ``out`` (checkpoint_path) is written at the end of every epoch of the
    warm-up and of Algorithm 1; with ``resume``, a run started again continues from it and ends
    with the same pools and weights as a run that never stopped. It is deleted once ``out`` is
    written. ``after_epoch(phase, epoch)`` runs once an epoch's checkpoint is on disk."""
    from .io.split_checkpoint import SplitCheckpoints

    progress = progress or Progress()
    _check_output(out)
    t0 = time.perf_counter()
    rt, ds, norm = prepare(data, cfg, progress)
    truth = load_truth(truth_manifest, ds) if truth_manifest else None
    if target is not None and target not in ds.classes:
        raise BadInputError(f"--target {target!r} is not a class of {ds.root}; classes: {', '.join(ds.classes)}")
    est = read_target_artifact(target_from, ds, cfg) if target_from is not None else None
    # what, besides data and config, makes two runs the same run: a checkpoint of another is refused
    identity = {"command": "split", "target": target, "target_from_als": None if est is None else _digest(est.sce),
                "truth": None if truth is None else _digest(truth)}
    gen, rng = rt.generator(cfg.seed), np.random.default_rng(cfg.seed)
    ckpt = SplitCheckpoints(checkpoint_path(out), identity, cfg, ds, rt.describe(), gen, rng, after_epoch)
    state = _resume_state(ckpt, resume, progress)
    with _naming_checkpoint(ckpt.path):
        if est is not None:
            source = "artifact"
            progress.log(f"target estimate read from {target_from}")
        elif state is not None and state.estimate is not None:
            est, source = state.estimate, "lga"  # the warm-up was over when the run stopped
        else:
            progress.start("altruistic warm-up (LGA)", lga_epochs(cfg, len(ds)))
            est = detect_target(ds, norm, cfg, rt, gen, progress, resume=state.warmup if state else None,
                                maybe_checkpoint=ckpt.warmup_epoch)
            progress.finish()
            source = "lga"
        used = est.target
        if target is not None:
            used, source = ds.classes.index(target), "user"
        progress.log(f"target: {ds.classes[used]} ({source}; LGA vote {ds.classes[est.target]} "
                     f"at {est.confidence:.0%}, second-likely {ds.classes[est.second_likely_target]})")
        ckpt.estimate = est
        listed = verdict_of(est, ds, used).suspicious if cfg.exclude_suspicious else None
        res = run_bsd(ds, norm, cfg, rt, est, used, gen, rng, truth, progress,
                      resume=state.bsd if state else None, maybe_checkpoint=ckpt.bsd_epoch, excluded=listed)
    progress.finish()
    v = verdict_of(est, ds, used, None if np.isnan(res.indicator).all() else res.indicator)
    labels = ds.labels.cpu().numpy()
    if cfg.exclude_suspicious:  # the final list reads I as well: what it adds leaves the clean pool too
        exclude_final_list(res, v.suspicious, labels, ds.num_classes, truth)
    clean = res.clean
    summary = {
        "command": "split", "artifact": str(out), "num_samples": len(ds), "classes": ds.classes,
        "fingerprint": ds.fingerprint, "device": rt.describe(),
        **target_summary(est, ds.classes, used, source),
        "clean_size": int(clean.sum()), "poison_size": int((~clean).sum()),
        "clean_share": round(float(clean.mean()), 4),
        "clean_per_class": {c: int(v) for c, v in zip(ds.classes, np.bincount(labels[clean], minlength=ds.num_classes))},
        "resumed_from": None if state is None else {"phase": state.phase, "epoch": state.epoch,
                                                    "settings_changed": state.changed},
    }
    summary["verdict"] = v.summary()
    if truth is not None:
        summary["truth"] = truth_figures(res, truth)
        n_poison, flagged = int(truth.sum()), v.suspicious
        summary["truth"]["suspicious_precision"] = round(float(truth[flagged].mean()), 4) if flagged.any() else None
        summary["truth"]["suspicious_recall"] = round(int((truth & flagged).sum()) / n_poison, 4) if n_poison else None
        p90 = precision_at_recall(v.suspicion, truth, 0.9)  # the ranking itself, whatever the list's cut
        summary["truth"]["suspicion_precision_at_recall_0.9"] = None if p90 is None else round(p90, 4)
    summary["wall_time_s"] = round(time.perf_counter() - t0, 2)
    with _keeping_checkpoint(ckpt.path):
        write_split_artifact(out, res, est, source, ds, cfg, rt.describe(), truth, summary, v)
    _discard(ckpt.path)  # the artifact now holds the result the checkpoint led to
    return summary


def _resume_state(ckpt, resume: bool, progress: Progress):
    """The state a SplitCheckpoints holds (None without one); with ``resume`` false the stale file is
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


def _discard(path: Path) -> None:
    """Delete a checkpoint; under torchrun rank 0 does it, as it alone writes files."""
    if is_main():
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
def _naming_checkpoint(ckpt: Path):
    """A diverged run's error names the checkpoint it leaves behind (the last good epoch's)."""
    try:
        yield
    except TrainingDivergedError as exc:
        if ckpt.exists():
            exc.checkpoint, exc.checkpoint_epochs = ckpt, describe_checkpoint(ckpt)
        raise


def truth_figures(res, truth: np.ndarray) -> dict:
    """Split quality against ground truth (metrics.split_quality) plus the initial pools' leak."""
    out = split_quality(res.clean, truth, {"oss": res.oss_scores, "als": res.als_scores, "indicator": res.indicator})
    out["poison_in_clean_init"] = int((res.clean_init & truth).sum())
    return out


# ---------------------------------------------------------------------------------- train-clean
def train_clean(data: Path, out: Path, cfg: Config, split_path: Path | None = None, mode: str = "mixmatch",
                resume: bool = True, progress: Progress | None = None, after_epoch=None) -> dict:
    """Train the purified model on a finished split (or, ``mode="baseline"``, the no-defence model on
    every sample as labelled) and write its weights file. A checkpoint beside ``out`` is written
    every epoch and, with ``resume``, continued when the same command is run again."""
    from .engine.purify import MODES, train_model
    from .io.models import read_split, write_model_artifact

    progress = progress or Progress()
    if mode not in MODES:
        raise BadInputError(f"--mode {mode!r}: choose one of {', '.join(MODES)}")
    if mode != "baseline" and split_path is None:
        raise BadInputError("train-clean needs --split SPLIT.h5 (from `bsd-audit split`), or --baseline for "
                            "the no-defence model")
    _check_output(out)
    t0 = time.perf_counter()
    rt, ds, norm = prepare(data, cfg, progress)
    clean, target, split_created, init_state, init = None, -1, "", None, "scratch"
    if mode != "baseline":
        sp = read_split(split_path, ds)
        clean, target, split_created = sp["clean"], sp["target"], sp["created"]
        progress.log(f"split {split_path}: clean pool {int(clean.sum())} of {len(ds)}, target {ds.classes[target]}")
        if cfg.purify_init == "split":
            init_state, init = _split_main_model(split_path, cfg, progress)
    identity = {"command": "train-clean", "mode": mode, "split_created": split_created, "init": init}
    ckpt = checkpoint_path(out)
    if not resume:
        _discard(ckpt)  # --no-resume: start again; the stale checkpoint must not be resumed later
    with _naming_checkpoint(ckpt):
        res = train_model(ds, norm, cfg, rt, mode, clean, identity, ckpt, resume, progress, after_epoch, init_state)
    mean, std = ds.channel_stats()
    summary = {
        "command": "train-clean", "artifact": str(out), "mode": mode, "arch": cfg.arch, "width": cfg.width,
        "epochs": cfg.purify_epochs, "init": init, "resumed_from_epoch": res.resumed_from, "num_samples": len(ds),
        "labelled": len(ds) if clean is None else int(clean.sum()),
        "unlabelled": 0 if clean is None or mode != "mixmatch" else int((~clean).sum()),
        "target_name": ds.classes[target] if target >= 0 else None, "split": None if split_path is None else str(split_path),
        "fingerprint": ds.fingerprint, "device": rt.describe(), "final_loss": round(res.history[-1]["loss"], 4),
    }
    summary["wall_time_s"] = round(time.perf_counter() - t0, 2)
    with _keeping_checkpoint(ckpt):
        write_model_artifact(out, res.model, ds, cfg, rt.describe(), mode, mean, std, target,
                             "" if split_path is None else str(split_path), split_created, res.history, summary)
    _discard(ckpt)  # the weights file now holds everything the checkpoint did
    return summary


def _split_main_model(split_path: Path, cfg: Config, progress: Progress) -> tuple[dict | None, str]:
    """The split's main model, to start the purified model from (config purify_init=split), when it
    is the architecture, width and resolution asked for now; else None (a new model)."""
    from .io.artifacts import open_artifact, read_tensors
    with open_artifact(split_path, "split") as f:
        made = json.loads(f.attrs["config"])
        state = read_tensors(f["weights/main"]) if "weights/main" in f else None
    same = all(made.get(k) == getattr(cfg, k) for k in ("arch", "width", "image_size"))
    if state is None or not same:
        progress.log(f"the split's main model is {made.get('arch')} width {made.get('width')} at "
                     f"{made.get('image_size')} px, this model {cfg.arch} width {cfg.width} at {cfg.image_size} px: "
                     "training from new weights (purify_init=split needs the same)")
        return None, "scratch"
    progress.log("starting from the split's main model (purify_init=split)")
    return state, "split main model"


# ---------------------------------------------------------------------------------- evaluate
def _load_eval_set(root: Path, classes: list[str], image_size: int, rt: Runtime, what: str) -> ImageDataset:
    """A test ImageFolder with its labels mapped to the model's class indices by folder name (a
    triggered set usually lacks the target's folder, so positions would not match)."""
    from .data.imagefolder import scan_tree
    tree = scan_tree(root)
    unknown = [c for c in tree.classes if c not in classes]
    if unknown:
        raise BadInputError(f"{root}: {what} class folder(s) {', '.join(unknown)} are not classes of the model "
                            f"({', '.join(classes)}). Pass a test set with the training set's class folders.")
    ds = load_imagefolder(root, image_size, rt.device, tree=tree)
    mapping = torch.tensor([classes.index(c) for c in ds.classes], device=rt.device)
    return ImageDataset(ds.root, list(classes), ds.paths, mapping[ds.labels], ds.images, ds.fingerprint, ds.skipped)


def _predictions(model, ds: ImageDataset, rt: Runtime) -> np.ndarray:
    from .engine.loops import predict
    norm = Normalizer(model.mean, model.std, rt.device, rt.channels_last)
    return predict(model.module, ds, norm, rt, 512).argmax(1).cpu().numpy()


def _backdoor_labels(labels: np.ndarray, classes: list[str], truth: Path | None, target: str | None,
                     model) -> tuple[np.ndarray, str, str]:
    """The label the backdoor sends each triggered sample to, and where that came from."""
    if target is not None:
        if target not in classes:
            raise BadInputError(f"--target {target!r} is not a class of the model; classes: {', '.join(classes)}")
        return np.full_like(labels, classes.index(target)), target, "user"
    if truth is not None:
        doc = _read_manifest(truth)
        mapping = doc.get("target_mapping") or ({c: doc["target"] for c in classes} if doc.get("target") else None)
        if not mapping:
            raise BadInputError(f"{truth}: the manifest names no target or target_mapping.")
        try:
            to = np.array([classes.index(mapping[classes[y]]) if classes[y] in mapping else y for y in labels])
        except ValueError as exc:
            raise BadInputError(f"{truth}: target_mapping names a class the model does not have ({exc}).") from exc
        name = "all-to-all (y -> y+1)" if doc.get("all2all") else str(doc.get("target"))
        return to, name, "manifest"
    if model.target >= 0:
        return np.full_like(labels, model.target), classes[model.target], "split estimate"
    raise BadInputError("ASR needs the attack's target: pass --target NAME or --truth MANIFEST "
                        "(a baseline model carries no estimated target).")


def _read_manifest(path: Path) -> dict:
    try:
        doc = json.loads(Path(path).read_text())
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        return doc
    except (OSError, ValueError) as exc:
        raise BadInputError(f"{path}: not a readable benchmark manifest ({exc}). "
                            "Pass the manifest.json written by `bsd-audit make-benchmark`.") from exc


def _pct(x: float) -> float | None:
    return None if x is None or np.isnan(x) else round(100.0 * x, 2)


def evaluate(model_path: Path, test: Path, triggered: Path | None = None, baseline: Path | None = None,
             truth: Path | None = None, split_path: Path | None = None, target: str | None = None,
             out: Path | None = None, device: str = "auto", min_ca: float | None = None,
             max_asr: float | None = None, progress: Progress | None = None) -> dict:
    """CA, ASR, DER, per-class accuracy and the confusion matrix of a model file; the split's quality
    when a ground-truth manifest is given. Shares are reported in percent. ``min_ca`` / ``max_asr``
    (percent) are CI thresholds: ``summary["thresholds"]["passed"]`` is False when one is crossed."""
    from .io.models import load_model, read_split
    from .metrics import accuracy, attack_success_rate, confusion_matrix, defence_effectiveness_ratio, per_class_accuracy

    progress = progress or Progress()
    if out is not None:
        _check_output(out)
    t0 = time.perf_counter()
    cfg = Config()
    cfg.device = device
    rt = make_runtime(cfg)
    model = load_model(model_path, rt.device)
    classes, C = model.classes, len(model.classes)
    progress.log(f"model {model_path}: {model.arch} ({model.mode}), {C} classes; device {rt.describe()}")
    test_ds = _load_eval_set(test, classes, model.image_size, rt, "test")
    y = test_ds.labels.cpu().numpy()
    pred = _predictions(model, test_ds, rt)
    conf = confusion_matrix(pred, y, C)
    ca = accuracy(pred, y)
    summary: dict = {
        "command": "evaluate", "model": str(model_path), "mode": model.mode, "arch": model.arch, "classes": classes,
        "test": str(test), "num_test": len(test_ds), "ca": _pct(ca),
        "per_class_accuracy": {c: _pct(a) for c, a in zip(classes, per_class_accuracy(conf))},
        "confusion": conf.tolist(), "device": rt.describe(),
    }
    asr = None
    trig_ds = trig_pred = backdoor = None
    if triggered is not None:
        trig_ds = _load_eval_set(triggered, classes, model.image_size, rt, "triggered")
        ty = trig_ds.labels.cpu().numpy()
        backdoor, tname, tsource = _backdoor_labels(ty, classes, truth, target, model)
        trig_pred = _predictions(model, trig_ds, rt)
        asr, counted = attack_success_rate(trig_pred, ty, backdoor)
        summary.update({"triggered": str(triggered), "num_triggered": counted, "asr": _pct(asr),
                        "target_name": tname, "target_source": tsource})
    if baseline is not None:
        base = load_model(baseline, rt.device)
        if base.classes != classes:
            raise BadInputError(f"{baseline}: baseline has classes {', '.join(base.classes)}, the model "
                                f"{', '.join(classes)}. Pass a baseline trained on the same data.")
        b_ca = accuracy(_predictions(base, test_ds, rt), y)
        b = {"model": str(baseline), "ca": _pct(b_ca)}
        if trig_ds is not None:
            b_asr, _ = attack_success_rate(_predictions(base, trig_ds, rt), trig_ds.labels.cpu().numpy(), backdoor)
            b["asr"] = _pct(b_asr)
            summary["der"] = _pct(defence_effectiveness_ratio(b_ca, b_asr, ca, asr))
        summary["baseline"] = b
    split_path = split_path or (Path(model.attrs["split_path"]) if model.attrs.get("split_path") else None)
    if truth is not None and split_path is not None and Path(split_path).exists():
        sp = read_split(split_path, None)
        poisoned = set(_read_manifest(truth).get("poisoned", []))
        mask = np.array([p in poisoned for p in sp["paths"]])
        if len(poisoned) and not mask.any():
            raise BadInputError(f"{truth}: none of its poisoned paths are in the split {split_path}. "
                                "Pass the manifest of the data the split was computed on.")
        summary["split_quality"] = {"split": str(split_path), **split_quality(sp["clean"], mask, sp["scores"])}
    failures = []
    if min_ca is not None and summary["ca"] is not None and summary["ca"] < min_ca:
        failures.append(f"CA {summary['ca']:.2f} % is below --min-ca {min_ca:g} %")
    if max_asr is not None:
        if asr is None:
            raise BadInputError("--max-asr needs --triggered TRIGGERED_TEST_SET to measure the ASR")
        if summary["asr"] is not None and summary["asr"] > max_asr:
            failures.append(f"ASR {summary['asr']:.2f} % is above --max-asr {max_asr:g} %")
    summary["thresholds"] = {"min_ca": min_ca, "max_asr": max_asr, "passed": not failures, "failures": failures}
    summary["wall_time_s"] = round(time.perf_counter() - t0, 2)
    if out is not None:
        _write_metrics(out, summary, test_ds, pred, conf, trig_ds, trig_pred, model, rt)
    return summary


def _write_metrics(out: Path, summary: dict, test_ds: ImageDataset, pred: np.ndarray, conf: np.ndarray,
                   trig_ds, trig_pred, model, rt: Runtime) -> None:
    from .io.artifacts import atomic_h5, write_provenance

    cfg = Config()
    for k, v in model.config.items():  # the model's own settings, as far as this version knows them
        if hasattr(cfg, k):
            setattr(cfg, k, v)
    with atomic_h5(out) as f:
        write_provenance(f, "metrics", cfg, test_ds, rt.describe())  # /samples: the clean test set
        f.attrs["summary"] = json.dumps(summary, sort_keys=True)
        f.attrs["model"] = summary["model"]
        f.attrs["model_fingerprint"] = model.fingerprint
        f.create_dataset("predictions/test", data=pred)
        f.create_dataset("confusion", data=conf)
        if trig_ds is not None:
            f.create_dataset("predictions/triggered", data=trig_pred)
            f.create_dataset("triggered/path", data=np.array(trig_ds.paths, dtype=object), dtype=h5py.string_dtype("utf-8"))
            f.create_dataset("triggered/label", data=trig_ds.labels.cpu().numpy())
