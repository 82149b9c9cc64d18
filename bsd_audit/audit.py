"""The engine behind the commands: load data, run the stages, write artifacts, return a summary.

The CLI parses options and formats output; everything it runs is here, callable from Python:

    from bsd_audit.audit import split
    from bsd_audit.config import resolve_config
    summary = split(Path("data"), Path("split.h5"), resolve_config("cpu"))
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from .config import Config
from .data import ImageDataset, Normalizer, load_imagefolder
from .engine.progress import Progress
from .engine.runtime import Runtime, make_runtime, seed_everything
from .errors import BadInputError
from .io.results import read_target_artifact, write_split_artifact, write_target_artifact
from .method.bsd import run_bsd
from .method.target import TargetEstimate, detect_target


def prepare(data: Path, cfg: Config, progress: Progress) -> tuple[Runtime, ImageDataset, Normalizer]:
    rt = make_runtime(cfg)
    seed_everything(cfg.seed)
    progress.log(f"device: {rt.describe()}")
    from .data.imagefolder import scan_tree
    tree = scan_tree(data)
    progress.start("decode images", len(tree.paths))
    ds = load_imagefolder(data, cfg.image_size, rt.device, cfg.max_image_pixels, progress=progress.advance, tree=tree)
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


def detect(data: Path, out: Path, cfg: Config, progress: Progress | None = None) -> dict:
    """Stage 0 alone: estimate ỹ_t and write the target artifact."""
    progress = progress or Progress()
    _check_output(out)
    t0 = time.perf_counter()
    rt, ds, norm = prepare(data, cfg, progress)
    progress.start("altruistic warm-up (LGA)", cfg.altruistic_warmup_epochs)
    est = detect_target(ds, norm, cfg, rt, rt.generator(cfg.seed), progress)
    progress.finish()
    write_target_artifact(out, est, ds, cfg, rt.describe())
    summary = {"command": "detect-target", "artifact": str(out), "num_samples": len(ds), "classes": ds.classes,
               "fingerprint": ds.fingerprint, "device": rt.describe(),
               **target_summary(est, ds.classes, est.target, "lga"),
               "wall_time_s": round(time.perf_counter() - t0, 2)}
    return summary


def load_truth(manifest: Path, ds: ImageDataset) -> np.ndarray:
    """Ground-truth poison mask from a benchmark manifest (paths relative to the data root)."""
    try:
        doc = json.loads(Path(manifest).read_text())
        poisoned = set(doc["poisoned"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BadInputError(f"{manifest}: not a readable benchmark manifest ({exc}). "
                            "Pass the manifest.json written by `bsd-audit make-benchmark`.") from exc
    truth = np.array([p in poisoned for p in ds.paths])
    missing = len(poisoned) - int(truth.sum())
    if missing:
        raise BadInputError(f"{manifest}: {missing} poisoned path(s) are not in {ds.root} "
                            "(is DATA the benchmark's train/ folder?).")
    return truth


def split(data: Path, out: Path, cfg: Config, target: str | None = None, target_from: Path | None = None,
          truth_manifest: Path | None = None, progress: Progress | None = None) -> dict:
    """Full BSD: target (detected, read from a detect-target artifact, or given), pool
    initialisation, pool updates to T3. Writes the split artifact and returns its summary."""
    progress = progress or Progress()
    _check_output(out)
    t0 = time.perf_counter()
    rt, ds, norm = prepare(data, cfg, progress)
    truth = load_truth(truth_manifest, ds) if truth_manifest else None
    gen = rt.generator(cfg.seed)
    if target_from is not None:
        est = read_target_artifact(target_from, ds)
        source = "artifact"
        progress.log(f"target estimate read from {target_from}")
    else:
        progress.start("altruistic warm-up (LGA)", cfg.altruistic_warmup_epochs)
        est = detect_target(ds, norm, cfg, rt, gen, progress)
        progress.finish()
        source = "lga"
    used = est.target
    if target is not None:
        if target not in ds.classes:
            raise BadInputError(f"--target {target!r} is not a class of {ds.root}; classes: {', '.join(ds.classes)}")
        used, source = ds.classes.index(target), "user"
    progress.log(f"target: {ds.classes[used]} ({source}; LGA vote {ds.classes[est.target]} "
                 f"at {est.confidence:.0%}, second-likely {ds.classes[est.second_likely_target]})")
    res = run_bsd(ds, norm, cfg, rt, est, used, gen, np.random.default_rng(cfg.seed), truth, progress)
    progress.finish()
    clean = res.clean
    labels = ds.labels.cpu().numpy()
    summary = {
        "command": "split", "artifact": str(out), "num_samples": len(ds), "classes": ds.classes,
        "fingerprint": ds.fingerprint, "device": rt.describe(),
        **target_summary(est, ds.classes, used, source),
        "clean_size": int(clean.sum()), "poison_size": int((~clean).sum()),
        "clean_share": round(float(clean.mean()), 4),
        "clean_per_class": {c: int(v) for c, v in zip(ds.classes, np.bincount(labels[clean], minlength=ds.num_classes))},
    }
    if truth is not None:
        summary["truth"] = truth_figures(res, truth)
    summary["wall_time_s"] = round(time.perf_counter() - t0, 2)
    write_split_artifact(out, res, est, source, ds, cfg, rt.describe(), truth, summary)
    return summary


def auroc(score_clean_high: np.ndarray, is_clean: np.ndarray) -> float | None:
    """Probability that a random clean sample scores above a random poisoned one (ties count half)."""
    ok = ~np.isnan(score_clean_high)
    s, c = score_clean_high[ok], is_clean[ok]
    n_pos, n_neg = int(c.sum()), int((~c).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    # tie-averaged 1-based ranks: each distinct value gets the mean of the ranks it spans
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2)[inverse]
    return float((ranks[c].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def truth_figures(res, truth: np.ndarray) -> dict:
    """Split quality against ground truth: the figures BSD is judged by."""
    n_poison = int(truth.sum())
    left = int((res.clean & truth).sum())
    poison_pool = ~res.clean
    return {
        "num_poisoned": n_poison,
        "poison_in_clean": left,
        "poison_left_share": round(left / n_poison, 4) if n_poison else None,
        "poison_recall": round(1 - left / n_poison, 4) if n_poison else None,
        "poison_pool_precision": round(float(truth[poison_pool].mean()), 4) if poison_pool.any() else None,
        "poison_in_clean_init": int((res.clean_init & truth).sum()),
        "auroc_oss": auroc(res.oss_scores, ~truth),
        "auroc_als": auroc(res.als_scores, ~truth),
        "auroc_indicator": auroc(res.indicator, ~truth),
    }
