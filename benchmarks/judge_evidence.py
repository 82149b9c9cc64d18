"""Judge stored runs again, offline, with the verdict as it is and with candidate rules: seconds, not
hours, per idea.

Reads the .json.gz files that `calibrate_verdict.py --evidence DIR` saves (one per run: labels, warm-up fit
ranks, the held-out check's label probabilities, the split's indicator I and pools, both target
estimates, the ground truth, the no-defence ASR) and prints, per run, the verdict as the tool decides
it with both lines of evidence, then the counts the verdict issue asks for: false alarms on clean
runs, misses among the attacks that took hold, and how often the wrong-target warning fired:

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

from bsd_audit.method.verdict import Evidence, attack_verdict, logit_ranks, most_coherent  # noqa: E402
from tables import markdown_table  # noqa: E402


def load(path: Path) -> dict:
    """One run's evidence: its scalars, and its per-sample arrays as numpy arrays (null -> NaN)."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        doc = json.load(fh)
    run = {k: v for k, v in doc.items() if k != "arrays"}
    for k, v in doc["arrays"].items():
        exact = k in ("labels", "truth", "clean", "main_pred", "holdout_called", "copy_of")
        run[k] = np.asarray(v) if exact else np.array([np.nan if x is None else x for x in v])
    run["baseline_asr"] = np.nan if run["baseline_asr"] is None else run["baseline_asr"]
    for k in ("holdout_variety", "coherence_z", "coherence_likeness"):  # per class
        if run.get(k) is not None:
            run[k] = np.array([np.nan if x is None else x for x in run[k]])
    return run


def evidence(run: dict, target: int) -> Evidence:
    ind = run["indicator"].astype(np.float64)
    prob = run.get("holdout_prob")
    return Evidence(labels=run["labels"].astype(np.int64), target=int(target),
                    fit_rank=run["fit_rank"].astype(np.float64), vote_share=float(run["vote_share"]),
                    estimates_agree=int(run["lga_target"]) == int(run["second_likely_target"]),
                    loss_gap=float(run["loss_gap"]), indicator=ind if np.isfinite(ind).all() else None,
                    second_likely=int(run["second_likely_target"]),
                    holdout_prob=None if prob is None else prob.astype(np.float64),
                    holdout_called=run.get("holdout_called"), holdout_called_prob=run.get("holdout_called_prob"),
                    holdout_variety=run.get("holdout_variety"), holdout_share=float(run.get("holdout_share", 0.5)),
                    copy_of=run.get("copy_of"), coherence_z=run.get("coherence_z"),
                    coherence_likeness=run.get("coherence_likeness"),
                    coherence_group=None if run.get("coherence_group") is None else np.asarray(run["coherence_group"]),
                    trigger_match=run.get("trigger_match"),
                    trigger_class=int(run.get("trigger_class", -1)), classes=[str(c) for c in run["classes"]])


def row_of(path: Path) -> dict:
    run = load(path)
    classes = [str(c) for c in run["classes"]]
    v = attack_verdict(evidence(run, int(run["target_used"])))
    truth = run["truth"].astype(bool)
    true_t = int(np.bincount(run["labels"][truth]).argmax()) if truth.any() else None
    lga, second = int(run["lga_target"]), int(run["second_likely_target"])
    x = v.inputs
    row = {
        "run": path.name.removesuffix(".json.gz"), "poisoned": bool(run["poisoned"]),
        "asr": None if np.isnan(run["baseline_asr"]) else round(float(run["baseline_asr"]), 1),
        "classes": len(classes), "n": len(run["labels"]), "true_target": "-" if true_t is None else classes[true_t],
        "lga": classes[lga], "second": classes[second], "verdict": v.verdict, "evidence": "+".join(v.evidence) or "-",
        "suspected": v.name(v.suspected), "warned": v.target_in_doubt, "score": round(v.score, 2),
        "holdout_z": round(x["holdout_z"], 2), "holdout_class": v.name(x["holdout_class"]) if x["holdout_tested"] else "-",
        "line": round(x["holdout_line"], 2), "sure": x["holdout_called_as_sure"],
        "spread": x["holdout_called_spread"], "variety": x.get("holdout_group_variety"), "odd_groups": ",".join(v.name(c) for c in x["holdout_odd_groups"]) or "-",
        "true_target_z": "-" if true_t is None or x["holdout_class_z"][true_t] is None else round(x["holdout_class_z"][true_t], 2),
        **_most_coherent(x, v),
    }
    if truth.any():
        tp = int((v.suspicious & truth).sum())
        row["list_precision"] = round(tp / max(int(v.suspicious.sum()), 1), 3)
        row["list_recall"] = round(tp / int(truth.sum()), 3)
    return row


def _most_coherent(x: dict, v) -> dict:
    """The most coherent group whose pictures are not alike (method/coherence.py): its class, which
    group, z and likeness."""
    best = most_coherent(x)
    if best is None:
        return {"coherence_class": "-", "coherence_group": "-", "coherence_z": "-", "likeness": "-"}
    z, c = best
    return {"coherence_class": v.name(c), "coherence_group": x["coherence_group"][c] or "-", "coherence_z": round(z, 1),
            "likeness": round(x["coherence_likeness"][c], 3)}


def tally(rows: list[dict], took_hold: float = 50.0) -> list[str]:
    """The verdict issue's counts over the judged runs."""
    clean = [r for r in rows if not r["poisoned"]]
    held = [r for r in rows if r["poisoned"] and r["asr"] is not None and r["asr"] >= took_hold]
    found = [r for r in rows if r["poisoned"] and r["lga"] == r["true_target"]]  # the vote's pick was right
    wrong_vote = [r for r in rows if r["poisoned"] and r["lga"] != r["true_target"]]
    out = [f"clean runs: {len(clean)}; poisoned {sum(r['verdict'] == 'poisoned' for r in clean)}, "
           f"inconclusive {sum(r['verdict'] == 'inconclusive' for r in clean)}; wrong-target warning "
           f"{sum(r['warned'] for r in clean)}",
           f"attacks that took hold (no-defence ASR >= {took_hold:g} %): {len(held)}; called poisoned "
           f"{sum(r['verdict'] == 'poisoned' for r in held)}; with ASR >= 80 % missed "
           f"{sum(r['verdict'] != 'poisoned' for r in held if r['asr'] >= 80)}",
           f"poisoned runs whose target the vote found: {len(found)}; warning fired {sum(r['warned'] for r in found)}",
           f"poisoned runs where the vote was wrong: {len(wrong_vote)}; warning fired "
           f"{sum(r['warned'] for r in wrong_vote)}, naming the true target {sum(r['warned'] and r['suspected'] == r['true_target'] for r in wrong_vote)}"]
    return out


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--json", dest="json_out", type=Path)
    ap.add_argument("--stage", choices=("detect", "split"), help="only the runs of this stage")
    args = ap.parse_args(argv)
    paths = sorted(p for p in args.folder.glob("*.json.gz") if args.stage is None or p.name.endswith(f"-{args.stage}.json.gz"))
    rows = [row_of(p) for p in paths]
    print(markdown_table(rows))
    print()
    print("\n".join(tally(rows)))
    if args.json_out:
        args.json_out.write_text(json.dumps(rows, indent=1) + "\n")
    return rows


if __name__ == "__main__":
    main()
