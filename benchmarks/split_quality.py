"""Split quality on poisoned benchmarks built from a clean ImageFolder (e.g. CIFAR-10).

For each attack: build the benchmark (bsd_audit.attacks), run `split` with the ground truth, and
report whether the target was found, the poison left in the clean pool, the clean-pool share, the
AUROC of each score and the wall time. Example (2-core CPU, about 4-5 minutes per attack):

    python benchmarks/split_quality.py ../shared/data/cifar10 --attacks badnets blended wanet \
        --per-class 250 --preset cpu --work runs/quality
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bsd_audit.api import split
from bsd_audit.attacks import build_benchmark
from bsd_audit.config import parse_overrides, resolve_config
from tables import markdown_table  # benchmarks/tables.py: the script's own folder is on sys.path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", type=Path, help="clean ImageFolder with train/ (and test/)")
    ap.add_argument("--attacks", nargs="+", default=["badnets", "blended", "wanet"])
    ap.add_argument("--rate", type=float, default=0.05)
    ap.add_argument("--per-class", type=int, default=250)
    ap.add_argument("--target", default=None)
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="config override FIELD=VALUE")
    ap.add_argument("--seed", type=int, default=1, help="benchmark seed (the audit uses the config's seed)")
    ap.add_argument("--work", type=Path, default=Path("runs/quality"))
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    cfg = resolve_config(args.preset, parse_overrides(args.sets))
    rows = []
    for attack in args.attacks:
        bench = args.work / f"{attack}-{args.per_class}"
        if not (bench / "manifest.json").exists():
            build_benchmark(args.source, bench, attack, rate=args.rate, target=args.target, per_class=args.per_class,
                            test_per_class=10, seed=args.seed, overwrite=True)
        manifest = json.loads((bench / "manifest.json").read_text())
        t0 = time.perf_counter()
        s = split(bench / "train", args.work / f"{attack}-split.h5", cfg, truth_manifest=bench / "manifest.json").to_dict()
        tr = s["truth"]
        rows.append({
            "attack": attack, "n": s["num_samples"], "poisoned": tr["num_poisoned"],
            "true_target": manifest["target"], "found": s["lga_target_name"], "second": s["second_likely_name"],
            "vote_share": s["confidence"], "poison_in_clean": tr["poison_in_clean"],
            "left_share": tr["poison_left_share"], "clean_share": s["clean_share"],
            "auroc_oss": tr["auroc_oss"], "auroc_als": tr["auroc_als"], "auroc_I": tr["auroc_indicator"],
            "wall_s": round(time.perf_counter() - t0, 1),
        })
        print(json.dumps(rows[-1]), flush=True)
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
