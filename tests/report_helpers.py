"""A tiny split artifact for the export and report tests, written by the real writer
(write_split) with made-up scores, so no training runs: a few hundred milliseconds.

The data is conftest's tiny poisoned ImageFolder (poison = white corner patch, relabelled to the
target). Scores are drawn so that poison sits low on ALS and I, as after a real split; the clean pool is the
top 70 % by a jittered I, so both pools hold samples of the target class and overlap on I.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from bsd_audit.api import load_truth
from bsd_audit.config import resolve_config
from bsd_audit.data.imagefolder import load_imagefolder
from bsd_audit.artifacts.split import write_split
from bsd_audit.method.verdict import Evidence, attack_verdict
from bsd_audit.method.bsd import EpochRecord, SplitResult
from bsd_audit.method.target import TargetEstimate
from conftest import make_tiny_poisoned


def make_split_artifact(base: Path, classes=("ant", "bee", "cat"), target="cat", per_class=12, n_poison=6,
                        with_truth=True, seed=0, with_verdict=False) -> tuple[Path, Path, np.ndarray]:
    """(artifact, data root, truth mask) under ``base``. ``with_verdict`` adds a /verdict computed by
    method/verdict.py from made-up fit ranks (the poisoned samples fitted best)."""
    root = base / "data"
    make_tiny_poisoned(root, classes=classes, per_class=per_class, n_poison=n_poison, target=target, seed=seed)
    ds = load_imagefolder(root, image_size=16, workers=1)
    truth = load_truth(base / "data_manifest.json", ds)
    n, t = len(ds), ds.classes.index(target)
    labels = ds.labels.numpy()
    rng = np.random.default_rng(seed)
    als = np.where(truth, rng.uniform(0.0, 0.2, n), rng.uniform(1.0, 3.0, n)).astype(np.float32)
    ind = np.where(truth, rng.uniform(-6.0, -4.0, n), rng.uniform(-3.0, 0.0, n)).astype(np.float32)
    oss = np.where(labels == t, rng.uniform(0.1, 0.9, n), np.nan).astype(np.float32)
    # the pools are not a cut on I (in a real split they come from both models over many epochs), so
    # the order "poison pool first" differs from the order by suspicion alone
    jittered = ind + rng.normal(0.0, 1.5, n) * ~truth
    clean = jittered > np.quantile(jittered, 0.3)
    res = SplitResult(target=t, oss_scores=oss, als_scores=als, indicator=ind, clean_oss=clean, clean_als=clean,
                      clean_init=clean, clean=clean,
                      history=[EpochRecord(0, "drop", 0.7, int(clean.sum()), np.bincount(labels[clean], minlength=len(classes)).tolist(),
                                           0.5, 0.4, int((clean & truth).sum()), 1.0)])
    votes = np.zeros(len(ds.classes), dtype=np.int64)
    votes[t] = 4
    votes[(t + 1) % len(votes)] = 1
    est = TargetEstimate(target=t, votes=votes, confidence=0.8, isolated=np.arange(5), isolated_loss_mean=0.01,
                         loss_median=1.0, second_likely_per_epoch=np.full(3, t), second_likely_target=t,
                         ce=als, sce=als, holdout_prob=np.full(n, np.nan), holdout_called=np.full(n, -1), holdout_called_prob=np.full(n, np.nan),
                         holdout_variety=np.full(len(votes), np.nan), copy_of=np.arange(n),
                         coherence_z=np.full(len(votes), np.nan), coherence_likeness=np.full(len(votes), np.nan),
                         coherence_size=np.full(len(votes), np.nan), coherence_group=np.full(len(votes), -1),
                         trigger_match=np.full(n, np.nan))
    cfg = resolve_config("cpu", {"device": "cpu"})
    summary = {"command": "split", "target_name": target, "num_samples": n}
    artifact = base / "split.h5"
    fit = np.where(truth, rng.uniform(0.001, 0.01, n), rng.uniform(0.2, 0.9, n))
    est.fit_rank = fit
    verdict = attack_verdict(Evidence(labels, t, fit, 0.8, True, 1.0))
    write_split(artifact, res, est, "lga", ds, cfg, "cpu", truth if with_truth else None, summary, verdict)
    if not with_verdict:  # what the ranking falls back on without the verdict's suspicion score
        with h5py.File(artifact, "a") as f:
            del f["verdict"], f["scores/suspicion"]
    return artifact, root, truth


def copy_with(src: Path, dst: Path, edit) -> Path:
    """A copy of an artifact changed by ``edit(h5py.File)``."""
    dst.write_bytes(src.read_bytes())
    with h5py.File(dst, "a") as f:
        edit(f)
    return dst
