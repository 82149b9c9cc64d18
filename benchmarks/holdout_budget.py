"""Detection power of the verdict's held-out check against its CPU time (issue 22, "budget where it buys
detection"): the check alone, re-run at several epoch budgets on stored runs' warm-up fit ranks.

For each run (a dataset and the evidence file `calibrate_verdict.py --evidence` saved for it), the check
is trained at every ``--epochs`` value with the run's config; the table gives its wall time, the lowest
class z (clean runs: how far the honest classes stay from the line) and the true target's z (poisoned
runs: how far the trigger group falls under it), beside the poisoned line for that many classes:

    python benchmarks/holdout_budget.py --epochs 5 10 15 25 \\
        --run runs/matrix2/m-blended20-3/train benchmarks/evidence/m-blended20-3-s0-detect.json.gz \\
        --run ../shared/data/clothing/train benchmarks/evidence/clean-clothing-s0-detect.json.gz
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bsd_audit.api import prepare  # noqa: E402
from bsd_audit.config import resolve_config  # noqa: E402
from bsd_audit.method.holdout import class_contrast, holdout_check  # noqa: E402
from bsd_audit.method.verdict import holdout_lines  # noqa: E402
from bsd_audit.training.progress import Progress  # noqa: E402
from judge_evidence import load  # noqa: E402
from tables import markdown_table  # noqa: E402


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", nargs=2, action="append", metavar=("DATA", "EVIDENCE"), required=True)
    ap.add_argument("--epochs", nargs="+", type=int, default=[5, 10, 15, 25])
    ap.add_argument("--preset", default="cpu")
    args = ap.parse_args(argv)
    rows = []
    for data, evidence in args.run:
        run = load(Path(evidence))
        truth = run["truth"].astype(bool)
        labels = run["labels"].astype(np.int64)
        true_t = int(np.bincount(labels[truth]).argmax()) if truth.any() else None
        for epochs in args.epochs:
            cfg = resolve_config(args.preset, {"seed": int(run["seed"]), "holdout_epochs": epochs})
            rt, ds, norm = prepare(Path(data), cfg, Progress())
            if not np.array_equal(ds.labels.cpu().numpy(), labels):
                raise SystemExit(f"{evidence} was not saved from {data}: the labels differ")
            t0 = time.perf_counter()
            prob = holdout_check(ds, norm, cfg, rt, run["fit_rank"].astype(np.float64))
            wall = time.perf_counter() - t0
            z = class_contrast(labels, run["fit_rank"], prob, cfg.holdout_share)
            low = min(z, key=z.get)
            row = {"run": Path(evidence).name.removesuffix(".json.gz"), "epochs": epochs, "check_s": round(wall, 1),
                   "lowest_z": round(z[low], 2), "lowest_class": str(run["classes"][low]),
                   "true_target_z": None if true_t is None else round(z.get(true_t, float("nan")), 2),
                   "line": round(holdout_lines(len(z))[0], 2)}
            rows.append(row)
            print(row, flush=True)
    print(markdown_table(rows))
    return rows


if __name__ == "__main__":
    main()
