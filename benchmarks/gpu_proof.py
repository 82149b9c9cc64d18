"""The GPU proof: one command that shows what an audit costs on a GPU and that it still finds the poison.

It builds a BadNets 5 % benchmark from the whole CIFAR-10 training set (50,000 images), runs the `fast`
preset's `split` on it, and reports, as a markdown table and a JSON file:

- wall time per stage (benchmark build, decode, altruistic warm-up, BSD epochs, writing), from the
  split's own progress reports;
- images/s of each training step (altruistic LGA, supervised warm-up, MixMatch, evaluation), timed
  with benchmarks/speed.py's timers on the same data and preset;
- the verdict, the target found, poison left in the clean pool, the suspicious list's precision and
  recall;
- peak GPU memory (torch's allocator) and peak host memory.

Meant to finish within 8 minutes on one H100-class GPU:

    PYTHONPATH=. python benchmarks/gpu_proof.py ../shared/data/cifar10 --json gpu_proof.json

--small runs the same steps on 100 images per class with a few epochs, on whatever device there is
(the CPU in CI, which keeps the script alive); its figures prove nothing about speed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/: speed.py's timers, tables.py

from bsd_audit.api import prepare, split  # noqa: E402
from bsd_audit.attacks import build_benchmark  # noqa: E402
from bsd_audit.config import parse_overrides, resolve_config  # noqa: E402
from bsd_audit.training.progress import Progress  # noqa: E402
from speed import host_peak_mb, time_eval, time_lga, time_mixmatch, time_supervised  # noqa: E402
from tables import markdown_table  # noqa: E402

SCHEMA = 1
# --small: a CIFAR-sized run shrunk until it takes a minute on a 2-core CPU (the fast preset's shape, fewer epochs)
SMALL = {"altruistic_warmup_epochs": 2, "altruistic_warmups": 1, "T1": 2, "init_fixed_epochs": 1, "T2": 4, "T3": 5,
         "mixmatch_iterations": 4, "mixmatch_rampup": 5, "arch": "fastnet", "width": 16, "altruistic_arch": "fastnet",
         "altruistic_width": 8, "warmup_batch_size": 128, "mixmatch_batch_size": 32, "isolation_share": 0.05}
STEP_BATCHES = 20  # batches per step timing (--small: 2)


class StageClock(Progress):
    """Records each stage the split reports (start to the next stage's start, or its finish)."""

    def __init__(self):
        self.stages: list[dict] = []
        self._open: tuple[str, int, float] | None = None

    def start(self, stage: str, total: int) -> None:
        self.finish()
        self._open = (stage, total, time.perf_counter())

    def finish(self) -> None:
        if self._open is not None:
            stage, total, t0 = self._open
            self.stages.append({"stage": stage, "steps": total, "seconds": round(time.perf_counter() - t0, 2)})
            self._open = None


def run(source: Path, work: Path, small: bool, sets: list[str]) -> dict:
    overrides = {"device": "auto", **(SMALL if small else {}), **parse_overrides(sets)}
    cfg = resolve_config("fast", overrides)
    bench = work / ("badnets-5-small" if small else "badnets-5")
    t0 = time.perf_counter()
    if not (bench / "manifest.json").exists():
        build_benchmark(source, bench, "badnets", rate=0.05, per_class=100 if small else None,
                        test_per_class=10, seed=0, overwrite=True)
    build_s = time.perf_counter() - t0

    clock = StageClock()
    t0 = time.perf_counter()
    report = split(bench / "train", work / "split.h5", cfg, truth_manifest=bench / "manifest.json", progress=clock,
                   resume=False, force=True)
    clock.finish()
    split_s = time.perf_counter() - t0
    gpu_peak = device_peak_mb_of(report.device)

    # step rates on the same data and preset (the split's own loops, timed alone)
    rt, ds, norm, cfg, _ = prepare(bench / "train", cfg, Progress())
    b = 2 if small else STEP_BATCHES
    steps = {"lga": time_lga(ds, norm, cfg, rt, b * cfg.altruistic_batch_size)}
    steps["supervised"], model = time_supervised(ds, norm, cfg, rt, b * cfg.warmup_batch_size)
    steps["eval"] = time_eval(model, ds, norm, cfg, rt, b * min(cfg.eval_batch_size, len(ds)))
    steps["mixmatch"] = time_mixmatch(ds, norm, cfg, rt, b)
    truth = report.truth or {}
    return {
        "schema": SCHEMA, "small": small, "device": report.device, "preset": cfg.preset,
        "num_images": report.num_samples, "benchmark": str(bench), "build_s": round(build_s, 1),
        "split_s": round(split_s, 1), "stages": clock.stages,
        "steps": {k: {"images_per_s": v["images_per_s"], "batch_size": v.get("batch_size")} for k, v in steps.items()},
        "verdict": report.verdict.verdict, "score": report.verdict.score, "target_found": report.target_name,
        "true_target": json.loads((bench / "manifest.json").read_text())["target"],
        "poison_in_clean": truth.get("poison_in_clean"), "num_poisoned": truth.get("num_poisoned"),
        "suspicious_precision": truth.get("suspicious_precision"), "suspicious_recall": truth.get("suspicious_recall"),
        "peak_gpu_mb": gpu_peak, "peak_host_mb": host_peak_mb(),
    }


def device_peak_mb_of(device: dict) -> float | None:
    if device["type"] != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated() / 2**20, 1)


def render(res: dict) -> str:
    d = res["device"]
    head = (f"GPU proof ({'small, proves nothing about speed' if res['small'] else 'full'}): {res['num_images']:,} "
            f"images, preset {res['preset']}, {d['name']} ({d['type']})")
    stages = markdown_table([{"stage": "build benchmark", "steps": "", "seconds": res["build_s"]}, *res["stages"],
                             {"stage": "split, all of it", "steps": "", "seconds": res["split_s"]}])
    steps = markdown_table([{"step": k, "images/s": v["images_per_s"], "batch": v["batch_size"]}
                            for k, v in res["steps"].items()])
    outcome = markdown_table([{k: res[k] for k in ("verdict", "score", "target_found", "true_target", "poison_in_clean",
                                                     "num_poisoned", "suspicious_precision", "suspicious_recall",
                                                     "peak_gpu_mb", "peak_host_mb")}])
    return f"{head}\n\n{stages}\n\n{steps}\n\n{outcome}\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", type=Path, help="CIFAR-10 as an ImageFolder with train/ and test/")
    ap.add_argument("--work", type=Path, default=Path("runs/gpu-proof"))
    ap.add_argument("--small", action="store_true", help="100 images per class, a few epochs: the CPU form for CI")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="FIELD=VALUE")
    ap.add_argument("--json", dest="json_out", type=Path, default=Path("gpu_proof.json"))
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    res = run(args.source, args.work, args.small, args.sets)
    print(render(res))
    args.json_out.write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")
    return res


if __name__ == "__main__":
    main()
