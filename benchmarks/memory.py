"""Peak host memory and speed of the two data stores (data/store.py) on one ImageFolder.

Each measurement runs in a process of its own, one after the other (never in parallel):

- baseline: import torch and the tool, build the preset's model and run the same training steps as
  the stores do on a synthetic set of four batches: the memory every run needs, data or not;
- memory / disk, cold: an empty decode cache: decode every image (into memory, or into the cache's
  file) and compute the channel statistics;
- memory / disk, warm: the same again, served by the cache, then training steps (the altruistic
  warm-up's: augmentation, normalisation, LGA objective) on a random subset;
- speed: both stores, warm, in one process, taking turns block by block so that both see the same
  machine (another job on the cores slows both alike): a pass of random batches reading the pixels
  alone (what the store itself costs), then real training of two identically seeded models, one
  per store, whose weights must come out identical.

Peak resident memory is the process's high-water mark (VmHWM, as ru_maxrss), reset at each phase
boundary through /proc/self/clear_refs so that every phase has its own peak; a run's peak is the
largest of its phases'. The disk store's reads go through the OS page cache, which is not the
process's memory (the kernel takes it back under pressure). Before the first process every image
file is read once, so that both stores decode from the page cache.

    python benchmarks/memory.py /work/shared/data/cifar10/train --preset cpu \\
        --json docs/scale_cifar10.json --markdown docs/scale_cifar10.md
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _hwm_mb() -> float:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_hwm() -> bool:
    """Start a new peak at the current resident size (Linux >= 4.0); False where that is refused."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


class _Phases:
    """Wall time and peak RSS per phase; the first phase is the imports (the process's start)."""

    def __init__(self):
        self.out: dict[str, dict] = {}
        self.exact = True  # False where the peak could not be reset: later phases then include earlier peaks
        self._name, self._t0 = "import", time.perf_counter()

    def next(self, name: str) -> None:
        self.out[self._name] = {"wall_s": round(time.perf_counter() - self._t0, 2), "peak_rss_mb": round(_hwm_mb(), 1)}
        self.exact = _reset_hwm() and self.exact
        self._name, self._t0 = name, time.perf_counter()

    def done(self) -> dict:
        self.next("")
        return self.out


def child(args) -> dict:
    """One measured process: ``args.child`` is baseline, memory, disk or speed."""
    ph = _Phases()
    import torch
    import torch.nn.functional as F

    from bsd_audit.config import parse_overrides, resolve_config
    from bsd_audit.data import ImageDataset, Normalizer
    from bsd_audit.data.imagefolder import load_imagefolder
    from bsd_audit.training.loops import train_epoch
    from bsd_audit.training.runtime import make_runtime, seed_everything
    from bsd_audit.method.altruistic import new_altruistic
    from bsd_audit.method.losses import lga_loss

    cfg = resolve_config(args.preset, {**parse_overrides(args.sets), "device": "cpu"})
    rt = make_runtime(cfg)
    seed_everything(cfg.seed)
    gen = rt.generator(cfg.seed)
    bs = cfg.altruistic_batch_size
    result: dict = {"child": args.child, "cache": args.state, "threads": torch.get_num_threads()}

    def steps(model, opt, ds, norm, subset, g) -> None:
        """The altruistic warm-up's training steps (method/altruistic.py) over ``subset``."""
        train_epoch(model, opt, ds, subset, lambda logits, y: F.cross_entropy(logits, y, reduction="none"),
                    lambda ce: lga_loss(ce.mean()[None], cfg.lga_gamma), norm, cfg, rt, g, bs, None,
                    cfg.altruistic_augment)

    def load(store: str) -> ImageDataset:
        logs: list[str] = []
        ds = load_imagefolder(args.data, cfg.image_size, rt.device, cfg.max_image_pixels, store=store,
                              cache_dir=args.cache, log=logs.append)
        result.update({"images": len(ds), "decoded_mb": round(ds.images.numel() / 2**20, 1), f"log_{store}": logs})
        return ds

    n_peak = args.peak_train_images
    if args.child == "baseline":
        ph.next("compute baseline")
        n = 4 * bs
        images = torch.randint(0, 256, (n, 3, cfg.image_size, cfg.image_size), dtype=torch.uint8, generator=gen)
        ds = ImageDataset(Path("."), [str(c) for c in range(10)], [str(i) for i in range(n)], torch.arange(n) % 10,
                          images, "")
        norm = Normalizer(*ds.channel_stats(), rt.device, rt.channels_last)
        ph.next("train")
        model, opt = new_altruistic(cfg, ds.num_classes, rt)
        steps(model, opt, ds, norm, torch.randint(0, n, (n_peak,), generator=gen), gen)
    elif args.child in ("memory", "disk"):
        ph.next("load")
        ds = load(args.child)
        ph.next("channel stats")
        norm = Normalizer(*ds.channel_stats(), rt.device, rt.channels_last)
        if args.state == "warm":
            ph.next("train")
            model, opt = new_altruistic(cfg, ds.num_classes, rt)
            steps(model, opt, ds, norm, torch.randperm(len(ds), generator=gen)[:n_peak], gen)
    else:  # speed: both stores in turns, block by block
        stores = {"memory": load("memory"), "disk": load("disk")}
        norm = Normalizer(*stores["memory"].channel_stats(), rt.device, rt.channels_last)
        n = len(stores["memory"])
        took = {"read": {"memory": 0.0, "disk": 0.0}, "train": {"memory": 0.0, "disk": 0.0}}
        order = torch.randperm(n, generator=gen)
        block = 40 * bs
        for i, start in enumerate(range(0, n, block)):
            for name in (("memory", "disk") if i % 2 == 0 else ("disk", "memory")):  # alternate who goes first
                t0 = time.perf_counter()
                for b in range(start, min(start + block, n), bs):
                    stores[name].images[order[b:b + bs]]
                took["read"][name] += time.perf_counter() - t0
        # a random subset spread over the whole file (the disk store's worst locality), the same for both
        subset = torch.randperm(n, generator=gen)[:args.train_images if args.train_images > 0 else n]
        models, gens = {}, {}
        for name in stores:
            seed_everything(cfg.seed)
            models[name], gens[name] = new_altruistic(cfg, len(stores[name].classes), rt), rt.generator(cfg.seed)
        block = 4 * bs
        for i, start in enumerate(range(0, len(subset), block)):
            for name in (("memory", "disk") if i % 2 == 0 else ("disk", "memory")):
                t0 = time.perf_counter()
                steps(*models[name], stores[name], norm, subset[start:start + block], gens[name])
                took["train"][name] += time.perf_counter() - t0
        result["train_images"] = len(subset)
        for name in stores:
            result[f"read_images_per_s_{name}"] = round(n / took["read"][name])
            result[f"train_images_per_s_{name}"] = round(len(subset) / took["train"][name], 1)
        a, b = (m[0].state_dict() for m in models.values())
        result["same_weights"] = all(torch.equal(a[k], b[k]) for k in a)
    result["phases"] = ph.done()
    result["peak_rss_mb"] = max(p["peak_rss_mb"] for p in result["phases"].values())
    result["phase_peaks_exact"] = ph.exact
    return result


def _run_child(args, kind: str, state: str, cache: Path) -> dict:
    cmd = [sys.executable, __file__, str(args.data), "--child", kind, "--state", state, "--cache", str(cache),
           "--preset", args.preset, "--train-images", str(args.train_images),
           "--peak-train-images", str(args.peak_train_images), *[a for s in args.sets for a in ("--set", s)]]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{kind} ({state}) failed:\n{proc.stderr[-4000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["process_wall_s"] = round(time.perf_counter() - t0, 1)
    res["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps({k: v for k, v in res.items() if not k.startswith("log")}), flush=True)
    return res


def _table(report: dict) -> str:
    b, runs, sp = report["baseline"], report["runs"], report["speed"]

    def ph(store, state, phase, key="peak_rss_mb", fmt="{:.0f}"):
        v = runs[store][state]["phases"].get(phase, {}).get(key)
        return "–" if v is None else fmt.format(v)

    peak = report["peak_rss_mb"]
    rows = [
        ("decoded data (MiB)", "–", f"{runs['memory']['warm']['decoded_mb']:.1f}", f"{runs['disk']['warm']['decoded_mb']:.1f}"),
        ("peak RSS: import torch + bsd_audit (MiB)", f"{b['phases']['import']['peak_rss_mb']:.0f}",
         ph("memory", "warm", "import"), ph("disk", "warm", "import")),
        ("peak RSS: load, cold cache = decode (MiB)", "–", ph("memory", "cold", "load"), ph("disk", "cold", "load")),
        ("peak RSS: load, warm cache (MiB)", "–", ph("memory", "warm", "load"), ph("disk", "warm", "load")),
        ("peak RSS: channel stats (MiB)", "–", ph("memory", "warm", "channel stats"), ph("disk", "warm", "channel stats")),
        ("peak RSS: training steps (MiB)", f"{b['phases']['train']['peak_rss_mb']:.0f}", ph("memory", "warm", "train"),
         ph("disk", "warm", "train")),
        ("**peak RSS, whole run (MiB)**", f"**{peak['baseline']:.0f}**", f"**{peak['memory']:.0f}**", f"**{peak['disk']:.0f}**"),
        ("**peak RSS above the baseline (MiB)**", "0", f"**{peak['memory'] - peak['baseline']:.0f}**",
         f"**{peak['disk'] - peak['baseline']:.0f}**"),
        ("load, cold cache = decode (s)", "–", ph("memory", "cold", "load", "wall_s", "{:.1f}"), ph("disk", "cold", "load", "wall_s", "{:.1f}")),
        ("load, warm cache (s)", "–", ph("memory", "warm", "load", "wall_s", "{:.2f}"), ph("disk", "warm", "load", "wall_s", "{:.2f}")),
        ("channel stats (s)", "–", ph("memory", "warm", "channel stats", "wall_s", "{:.2f}"),
         ph("disk", "warm", "channel stats", "wall_s", "{:.2f}")),
        ("random batches, pixels only, one epoch (images/s)", "–", f"{sp['read_images_per_s_memory']:,}",
         f"{sp['read_images_per_s_disk']:,}"),
        (f"training steps, {sp['train_images']:,} random images (images/s)", "–", f"{sp['train_images_per_s_memory']:.0f}",
         f"{sp['train_images_per_s_disk']:.0f}"),
    ]
    lines = ["| | baseline (no data) | memory store | disk store |", "|---|---:|---:|---:|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    r = report["ratios"]
    above = "n/a (the memory store is not above the baseline)" if r["above_baseline"] is None else f"{r['above_baseline']:.3f}"
    lines += ["", f"disk / memory, whole-run peak: {r['whole_run']:.2f}; above the baseline: {above}. "
              f"Speed: both stores in one process, in turns; the two models' weights came out "
              f"{'identical' if sp['same_weights'] else 'DIFFERENT'}."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="config override (repeatable)")
    ap.add_argument("--train-images", type=int, default=5120,
                    help="training images per store for the speed figures, drawn at random (0: a whole epoch)")
    ap.add_argument("--peak-train-images", type=int, default=1280,
                    help="training images in the memory measurements (the peak is reached within a few batches)")
    ap.add_argument("--cache-root", type=Path, help="where the caches go (default: a new folder in /tmp, removed after)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--markdown", type=Path)
    ap.add_argument("--child", choices=("baseline", "memory", "disk", "speed"), help=argparse.SUPPRESS)
    ap.add_argument("--state", choices=("cold", "warm"), default="warm", help=argparse.SUPPRESS)
    ap.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    root = args.cache_root or Path(tempfile.mkdtemp(prefix="bsd-memory-bench-"))
    for dirpath, _, files in os.walk(args.data):  # both stores decode from the page cache
        for f in files:
            with open(os.path.join(dirpath, f), "rb") as fh:
                while fh.read(1 << 20):
                    pass
    report: dict = {"data": str(args.data), "preset": args.preset, "sets": args.sets, "cpus": os.cpu_count(),
                    "train_images": args.train_images, "peak_train_images": args.peak_train_images,
                    "load_average_before": [round(x, 2) for x in os.getloadavg()], "runs": {}}
    try:
        report["baseline"] = _run_child(args, "baseline", "warm", root / "none")
        for store in ("memory", "disk"):
            cache = root / store  # a cache of its own: each store's cold run is cold
            shutil.rmtree(cache, ignore_errors=True)
            report["runs"][store] = {state: _run_child(args, store, state, cache) for state in ("cold", "warm")}
        report["speed"] = _run_child(args, "speed", "warm", root / "disk")
    finally:
        if args.cache_root is None:
            shutil.rmtree(root, ignore_errors=True)
    peak = {s: max(r["cold"]["peak_rss_mb"], r["warm"]["peak_rss_mb"]) for s, r in report["runs"].items()}
    peak["baseline"] = report["baseline"]["peak_rss_mb"]
    report["peak_rss_mb"] = peak
    report["ratios"] = {"whole_run": peak["disk"] / peak["memory"],
                        "above_baseline": (max(peak["disk"] - peak["baseline"], 0) / (peak["memory"] - peak["baseline"])
                                           if peak["memory"] > peak["baseline"] else None)}
    table = _table(report)
    print(table)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    if args.markdown:
        args.markdown.write_text(table + "\n")


if __name__ == "__main__":
    main()
