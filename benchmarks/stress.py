"""Stress check: the audit several times in a row in one process, and in parallel processes.

Reports, per in-process run, the wall time and the peak resident memory (ru_maxrss) after it, so
a leak shows as growth from run to run; then runs the same audit in parallel processes on different
output paths and checks that every run, sequential or parallel, gave the same split (same data,
config and seed on the same device). Example (2-core CPU):

    python benchmarks/stress.py sample_data/train --preset cpu --runs 3 --parallel 2 --threads 1

Shorten a run for a quick check with --set (e.g. --set altruistic_warmup_epochs=4 --set T1=3 ...).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bsd_audit.api import split
from bsd_audit.artifacts.split import read_split
from bsd_audit.config import parse_overrides, resolve_config
from bsd_audit.training.progress import Progress


def _pools(path: Path) -> tuple[np.ndarray, np.ndarray]:
    sp = read_split(path)
    return sp.clean, sp.scores["indicator"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--runs", type=int, default=3, help="sequential runs in this process")
    ap.add_argument("--parallel", type=int, default=2, help="runs in parallel processes")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads per run (parallel runs share the cores)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    sets = args.sets + [f"threads={args.threads}"]
    cfg = resolve_config(args.preset, parse_overrides(sets))
    work = Path(tempfile.mkdtemp(prefix="bsd-stress-"))
    report: dict = {"data": str(args.data), "preset": args.preset, "sets": sets, "sequential": [], "parallel": {}}
    for i in range(args.runs):
        t0 = time.perf_counter()
        split(args.data, work / f"seq{i}.h5", cfg, progress=Progress())
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        report["sequential"].append({"run": i, "wall_s": round(time.perf_counter() - t0, 1), "peak_rss_mb": round(rss)})
        print(json.dumps(report["sequential"][-1]), flush=True)
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "bsd_audit", "split", str(args.data), "--preset", args.preset, "--quiet",
           *[a for s in sets for a in ("--set", s)]]
    procs = [subprocess.Popen(cmd + ["--out", str(work / f"par{i}.h5")]) for i in range(args.parallel)]
    codes = [p.wait() for p in procs]
    report["parallel"] = {"processes": args.parallel, "exit_codes": codes, "wall_s": round(time.perf_counter() - t0, 1)}
    print(json.dumps(report["parallel"]), flush=True)
    ref_clean, ref_i = _pools(work / "seq0.h5")
    same = []
    for path in sorted(work.glob("*.h5")):
        clean, ind = _pools(path)
        same.append(bool(np.array_equal(clean, ref_clean) and np.array_equal(ind, ref_i, equal_nan=True)))
    growth = report["sequential"][-1]["peak_rss_mb"] - report["sequential"][0]["peak_rss_mb"]
    report.update({"all_runs_identical": all(same) and all(c == 0 for c in codes), "peak_rss_growth_mb": growth})
    print(f"runs identical: {report['all_runs_identical']}; peak RSS growth from run 1 to run {args.runs}: {growth} MB")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
