"""How much poison each way of ranking the target class would keep clean (docs/decisions/0008-target-keep.md).

Reads the split runs that `calibrate_verdict.py --evidence DIR` saved and, for every poisoned run whose
trigger coherence read the target's trigger, counts the poisoned images among the share of D_t that
`target_keep` keeps, ranked by the fit rank (`fit_rank`), by the lowest trigger match, and by the
match closest to the other classes' (`trigger`, the default):

    python benchmarks/target_keep_table.py benchmarks/evidence
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bsd_audit.method.pools import target_keep, trigger_keep_score  # noqa: E402
from judge_evidence import load  # noqa: E402
from tables import markdown_table  # noqa: E402

SHARES = (0.1, 0.2, 0.3)


def kept_poison(run: dict, shares=SHARES) -> dict[str, list[int]] | None:
    """Poisoned images kept at each share, per ranking; None when the run has no read trigger in its target."""
    labels, t = run["labels"].astype(int), int(run["target_used"])
    truth = run["truth"].astype(bool)
    match = run.get("trigger_match")
    if match is None or run.get("trigger_class", -1) != t or not truth[labels == t].any():
        return None
    scores = {"fit rank": run["fit_rank"], "lowest match": -np.nan_to_num(match, nan=np.inf),
              "closest to the other classes' match": trigger_keep_score(match, labels, t)}
    return {name: [int((target_keep(s, labels, t, share) & truth).sum()) for share in shares]
            for name, s in scores.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("evidence", type=Path, help="a folder of *-split.json.gz runs (searched recursively)")
    args = ap.parse_args(argv)
    rows = []
    shares = " / ".join(f"{round(s * 100)}" for s in SHARES) + " %"
    for path in sorted(args.evidence.rglob("*-split.json.gz")):
        run = load(path)
        counts = kept_poison(run)
        if counts is None:
            continue
        labels, t = run["labels"].astype(int), int(run["target_used"])
        d_t = f"{int((labels == t).sum()):,} ({int(run['truth'][labels == t].sum())})"
        rows.append({"split run": str(path.relative_to(args.evidence)).removesuffix("-split.json.gz"),
                     "D_t (poisoned)": d_t,
                     **{f"{name}, {shares}": " / ".join(map(str, c)) for name, c in counts.items()}})
    print(markdown_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
