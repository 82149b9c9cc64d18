"""Judge stored runs again, offline, with the verdict as it is and with candidate rules: seconds, not
hours, per idea.

Reads the .json.gz files that `calibrate_verdict.py --evidence DIR` saves (one per run: labels, warm-up fit
ranks, the split's indicator I and pools, both target estimates, the ground truth, the no-defence ASR)
and prints, per run: the verdict and score as the tool decides them, and each class's score when it is
taken as the candidate target (fit ranks alone), so that a rule reading every class, or both
estimates, can be measured on clean and poisoned runs before it is kept:

    python benchmarks/judge_evidence.py benchmarks/evidence
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bsd_audit.method.verdict import Evidence, attack_verdict, logit_ranks  # noqa: E402
from tables import markdown_table  # noqa: E402


def load(path: Path) -> dict:
    """One run's evidence: its scalars, and its per-sample arrays as numpy arrays (null -> NaN)."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        doc = json.load(fh)
    run = {k: v for k, v in doc.items() if k != "arrays"}
    for k, v in doc["arrays"].items():
        run[k] = np.array([np.nan if x is None else x for x in v]) if k not in ("labels", "truth", "clean", "main_pred") \
            else np.asarray(v)
    run["baseline_asr"] = np.nan if run["baseline_asr"] is None else run["baseline_asr"]
    return run


def evidence(run: dict, target: int, with_indicator: bool = True) -> Evidence:
    ind = run["indicator"].astype(np.float64)
    use = with_indicator and np.isfinite(ind).all()
    return Evidence(labels=run["labels"].astype(np.int64), target=int(target),
                    fit_rank=run["fit_rank"].astype(np.float64), vote_share=float(run["vote_share"]),
                    estimates_agree=int(run["lga_target"]) == int(run["second_likely_target"]),
                    loss_gap=float(run["loss_gap"]), indicator=ind if use else None)


def class_scores(run: dict) -> np.ndarray:
    """Each class's verdict score when it is taken as the target (fit ranks alone)."""
    C = len(run["classes"])
    return np.array([attack_verdict(evidence(run, c, with_indicator=False)).score for c in range(C)])


def tail_fractions(run: dict, upper: float = 0.9, reference: float = 0.05) -> dict[int, float]:
    """A candidate statistic (not in the tool): each class's logit fit ranks standardised by its own
    median and upper spread (the 0.9 quantile minus the median: poison sits at the bottom, so the upper
    half is the honest part's, and the class's own scale absorbs the size effect of an imbalanced set),
    and the share of the class below the other classes' pooled ``reference`` quantile. About
    ``reference`` for an honest class; the poison's share of D_t on top of it when a trigger group
    is fitted first. Classes under 10 samples are left out."""
    labels = run["labels"].astype(np.int64)
    lg = logit_ranks(run["fit_rank"].astype(np.float64))
    z = {}
    for k in np.unique(labels):
        g = lg[labels == k]
        if len(g) >= 10:
            m = np.median(g)
            z[int(k)] = (g - m) / max(float(np.quantile(g, upper)) - m, 1e-6)
    return {c: float((zc < np.quantile(np.concatenate([z[k] for k in z if k != c]), reference)).mean())
            for c, zc in z.items()}


def row_of(path: Path) -> dict:
    run = load(path)
    classes = [str(c) for c in run["classes"]]
    v = attack_verdict(evidence(run, int(run["target_used"])))
    scores = class_scores(run)
    best = int(np.argmax(scores))
    truth = run["truth"].astype(bool)
    true_target = classes[int(np.bincount(run["labels"][truth]).argmax())] if truth.any() else None
    lga, second = int(run["lga_target"]), int(run["second_likely_target"])
    fractions = tail_fractions(run)
    return {
        "run": path.name.removesuffix(".json.gz"), "poisoned": bool(run["poisoned"]),
        "asr": None if np.isnan(run["baseline_asr"]) else round(float(run["baseline_asr"]), 1),
        "classes": len(classes), "n": len(run["labels"]), "true_target": true_target,
        "lga": classes[lga], "second": classes[second], "verdict": v.verdict, "score": round(v.score, 2),
        "score_second": round(float(scores[second]), 2), "best_class": classes[best],
        "best_score": round(float(scores[best]), 2),
        "tail_frac_lga": round(fractions.get(lga, float("nan")), 3),
        "tail_frac_max": round(max(fractions.values()), 3),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--json", dest="json_out", type=Path)
    args = ap.parse_args(argv)
    rows = [row_of(p) for p in sorted(args.folder.glob("*.json.gz"))]
    print(markdown_table(rows))
    if args.json_out:
        args.json_out.write_text(json.dumps(rows, indent=1) + "\n")
    return rows


if __name__ == "__main__":
    main()
