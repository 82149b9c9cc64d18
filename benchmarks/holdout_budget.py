"""Detection power of the verdict's held-out check against its CPU time (issue 22, "budget where it buys
detection"): the check alone, re-run at several epoch budgets on stored runs' warm-up fit ranks.

For each run (a dataset and the evidence file `calibrate_verdict.py --evidence` saved for it), the check
is trained at every ``--epochs`` value with the run's config; the table gives its wall time, the lowest
class z (clean runs: how far the honest classes stay from the line), the true target's z (poisoned
runs: how far the trigger group falls under it), the strong line for that many classes, how surely the
model calls the lowest class's unrecognised samples other classes, and the verdict the tool gives:

    python benchmarks/holdout_budget.py --epochs 5 10 15 25 \\
        --run runs/matrix2/m-blended20-3/train benchmarks/evidence/m-blended20-3-s0-detect.json.gz \\
        --run ../shared/data/clothing/train benchmarks/evidence/clean-clothing-s0-detect.json.gz

``--copies-only`` writes each run's ``copy_of`` (which pictures are identical, ImageDataset.copy_of) into
its evidence file and trains nothing: evidence saved before the check counted copies once.

``--variety-only`` writes each run's ``holdout_variety`` (how varied each class's unrecognised group's
pictures are, method/holdout.py ``group_variety``) from its stored fit ranks and held-out label
probabilities, and trains nothing: evidence saved before the verdict read it.

``--coherence-only`` writes each run's trigger coherence (method/coherence.py: per class the coherence
z and likeness of its unrecognised group, per sample the trigger match) the same way.

``--update-evidence`` writes the check's output at the preset's epochs back into each evidence file, so
that judge_evidence.py judges the run as the tool would (the check's model is seeded from the run's
seed alone: the label probabilities it writes are the ones the run stored).
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bsd_audit.api import prepare  # noqa: E402
from bsd_audit.config import resolve_config  # noqa: E402
from bsd_audit.method.coherence import trigger_coherence  # noqa: E402
from bsd_audit.method.holdout import class_contrast, group_variety, holdout_check  # noqa: E402
from bsd_audit.method.verdict import attack_verdict, holdout_line  # noqa: E402
from bsd_audit.training.progress import Progress  # noqa: E402
from calibrate_verdict import _listed  # noqa: E402
from judge_evidence import evidence, load  # noqa: E402
from tables import markdown_table  # noqa: E402


def update_evidence(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write per-sample ``arrays`` into an evidence file; the per-class readings and the trigger class go
beside them."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        doc = json.load(fh)
    arrays = dict(arrays)
    for k in ("holdout_variety", "coherence_z", "coherence_likeness"):
        if k in arrays:
            doc[k] = _listed(np.asarray(arrays.pop(k)))
    if "coherence_group" in arrays:
        doc["coherence_group"] = [int(g) for g in arrays.pop("coherence_group")]
    if "trigger_class" in arrays:
        doc["trigger_class"] = int(arrays.pop("trigger_class"))
    doc["arrays"].update({k: _listed(v) for k, v in arrays.items()})
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        json.dump(doc, fh, separators=(",", ":"))


def data_of(run: dict, data: str, evidence_file: str, preset: str, **overrides):
    """The run's data read again as the run read it (its seed and working size): runtime, dataset,
    normalizer and config; refused when it is not the data the evidence was saved from."""
    cfg = resolve_config(preset, {"seed": int(run["seed"]), "image_size": int(run["image_size"]), **overrides})
    rt, ds, norm, cfg, _ = prepare(Path(data), cfg, Progress())
    if not np.array_equal(ds.labels.cpu().numpy(), run["labels"]):
        raise SystemExit(f"{evidence_file} was not saved from {data}: the labels differ")
    return rt, ds, norm, cfg


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", nargs=2, action="append", metavar=("DATA", "EVIDENCE"), required=True)
    ap.add_argument("--epochs", nargs="+", type=int, default=[5, 10, 15, 25])
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--update-evidence", action="store_true",
                    help="store the check at the preset's epochs in each evidence file")
    ap.add_argument("--copies-only", action="store_true", help="store which pictures are copies; train nothing")
    ap.add_argument("--variety-only", action="store_true",
                    help="store how varied each class's unrecognised group is; train nothing")
    ap.add_argument("--coherence-only", action="store_true",
                    help="store each class's trigger coherence and the trigger match; train nothing")
    args = ap.parse_args(argv)
    rows = []
    for data, evidence_file in args.run:
        run = load(Path(evidence_file))
        if args.copies_only:
            _, ds, _, _ = data_of(run, data, evidence_file, args.preset)
            copy_of = ds.copy_of()
            update_evidence(Path(evidence_file), {"copy_of": copy_of})
            print(f"{evidence_file}: {int((copy_of != np.arange(len(copy_of))).sum())} copies", flush=True)
            continue
        if args.variety_only and run.get("holdout_prob") is None:
            print(f"{evidence_file}: saved before the held-out check; nothing to read", flush=True)
            continue
        if args.coherence_only:
            _, ds, _, cfg = data_of(run, data, evidence_file, args.preset)
            prob = run.get("holdout_prob")  # saved before the held-out check: the last-fitted groups alone
            co = trigger_coherence(ds, run["labels"].astype(np.int64), run["fit_rank"].astype(np.float64),
                                   None if prob is None else prob.astype(np.float64), run.get("holdout_called"),
                                   float(run.get("holdout_share", 0.5)), run.get("copy_of"), cfg.seed)
            update_evidence(Path(evidence_file), {"coherence_z": co.z, "coherence_likeness": co.likeness,
                                                  "coherence_group": co.group, "trigger_match": co.match, "trigger_class": co.match_class})
            print(f"{evidence_file}: coherence {np.round(co.z, 1).tolist()}, likeness "
                  f"{np.round(co.likeness, 2).tolist()}, trigger class {co.match_class}", flush=True)
            continue
        if args.variety_only:
            _, ds, _, cfg = data_of(run, data, evidence_file, args.preset)
            variety = group_variety(ds, run["labels"].astype(np.int64), run["fit_rank"].astype(np.float64),
                                    run["holdout_prob"].astype(np.float64), float(run.get("holdout_share", 0.5)),
                                    run.get("copy_of"), cfg.seed)
            update_evidence(Path(evidence_file), {"holdout_variety": variety})
            print(f"{evidence_file}: variety {np.round(variety, 2).tolist()}", flush=True)
            continue
        truth = run["truth"].astype(bool)
        labels = run["labels"].astype(np.int64)
        true_t = int(np.bincount(labels[truth]).argmax()) if truth.any() else None
        for epochs in args.epochs:
            rt, ds, norm, cfg = data_of(run, data, evidence_file, args.preset, holdout_epochs=epochs)
            t0 = time.perf_counter()
            prob, called, called_prob = holdout_check(ds, norm, cfg, rt, run["fit_rank"].astype(np.float64))
            wall = time.perf_counter() - t0
            z = class_contrast(labels, run["fit_rank"], prob, cfg.holdout_share, run.get("copy_of"))
            low = min(z, key=z.get)
            variety = group_variety(ds, labels, run["fit_rank"].astype(np.float64), prob, cfg.holdout_share,
                                    run.get("copy_of"), cfg.seed)
            checked = {"holdout_prob": prob, "holdout_called": called, "holdout_called_prob": called_prob,
                       "holdout_variety": variety}
            v = attack_verdict(evidence({**run, **checked}, int(run["target_used"])))
            row = {"run": Path(evidence_file).name.removesuffix(".json.gz"), "epochs": epochs, "check_s": round(wall, 1),
                   "lowest_z": round(z[low], 2), "lowest_class": str(run["classes"][low]),
                   "true_target_z": None if true_t is None else round(z.get(true_t, float("nan")), 2),
                   "line": round(holdout_line(len(z)), 2),
                   "called_as_sure": v.inputs["holdout_called_as_sure"], "verdict": v.verdict}
            rows.append(row)
            print(row, flush=True)
            if args.update_evidence and epochs == resolve_config(args.preset).holdout_epochs:
                update_evidence(Path(evidence_file), checked)
    print(markdown_table(rows))
    return rows


if __name__ == "__main__":
    main()
