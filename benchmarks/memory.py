"""Peak host memory and speed of the two data stores (data/store.py) on one ImageFolder.

Each measurement runs in a process of its own, one after the other (never in parallel):

- baseline: import torch and the tool, build the cpu preset's model and train it on as many images
  of a tiny synthetic set as the store runs train on: the memory every run needs, data or not;
- memory / disk, cold: an empty decode cache; decode every image (into memory, or into the cache's
  file) and compute the channel statistics;
- memory / disk, warm: the same command again, served by the cache; then one pass of random
  batches reading the pixels alone (what the store costs), and real training steps (the altruistic
  warm-up's: augmentation, normalisation, LGA objective) on a random subset, or a whole epoch.

Peak resident memory is the process's high-water mark (VmHWM, the same as ru_maxrss), reset at each
phase boundary through /proc/self/clear_refs so that every phase gets its own peak; a run's peak is
the largest of its phases'. The disk store's reads go through the OS page cache, which is not the
process's memory (and which the kernel takes back under pressure). Before the first child, every
image file is read once, so that both stores decode from the page cache.

    python benchmarks/memory.py /work/shared/data/cifar10/train --train-images 2560 \\
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

PHASES = ("import", "compute baseline", "load", "channel stats", "read pass", "train")


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
    def __init__(self):
        self.out: dict[str, dict] = {}
        self.can_reset = True
        self._name, self._t0 = "import", time.perf_counter()

    def next(self, name: str) -> None:
        self.out[self._name] = {"wall_s": round(time.perf_counter() - self._t0, 2), "peak_rss_mb": round(_hwm_mb(), 1)}
        self.can_reset = _reset_hwm() and self.can_reset
        self._name, self._t0 = name, time.perf_counter()

    def done(self) -> dict:
        self.next("")
        return self.out


def child(args) -> dict:
    """One measured process: ``args.store`` is baseline, memory or disk."""
    ph = _Phases()
    import torch
    import torch.nn.functional as F

    from bsd_audit.config import parse_overrides, resolve_config
    from bsd_audit.data import ImageDataset, Normalizer
    from bsd_audit.data.cache import resolve_cache_dir
    from bsd_audit.data.imagefolder import load_imagefolder, scan_tree
    from bsd_audit.engine.loops import train_epoch
    from bsd_audit.engine.runtime import make_runtime, seed_everything
    from bsd_audit.method.altruistic import new_altruistic
    from bsd_audit.method.losses import lga_loss

    store = "memory" if args.store == "baseline" else args.store
    cfg = resolve_config(args.preset, {**parse_overrides(args.sets), "device": "cpu", "data_store": store,
                                       "cache_dir": str(args.cache)})
    rt = make_runtime(cfg)
    seed_everything(cfg.seed)
    gen = rt.generator(cfg.seed)
    result: dict = {"store": args.store, "cache": args.state, "threads": torch.get_num_threads()}

    def train(ds: ImageDataset, norm: Normalizer, subset: torch.Tensor) -> None:
        ph.next("train")
        model, opt = new_altruistic(cfg, ds.num_classes, rt)
        t0 = time.perf_counter()
        train_epoch(model, opt, ds, subset, lambda logits, y: F.cross_entropy(logits, y, reduction="none"),
                    lambda ce: lga_loss(ce.mean()[None], cfg.lga_gamma), norm, cfg, rt, gen,
                    cfg.altruistic_batch_size, None, cfg.altruistic_augment)
        result["train_images"] = len(subset)
        result["train_images_per_s"] = round(len(subset) / (time.perf_counter() - t0), 1)

    def count(n_data: int) -> int:
        return n_data if args.train_images <= 0 else min(args.train_images, n_data)

    if args.store == "baseline":
        # The same training steps on a synthetic set of a few batches: what every run needs, data or not.
        ph.next("compute baseline")
        n = 4 * cfg.altruistic_batch_size
        images = torch.randint(0, 256, (n, 3, cfg.image_size, cfg.image_size), dtype=torch.uint8, generator=gen)
        ds = ImageDataset(Path("."), [str(c) for c in range(10)], [str(i) for i in range(n)],
                          torch.arange(n) % 10, images, "")
        norm = Normalizer(*ds.channel_stats(), rt.device, rt.channels_last)
        steps = count(len(scan_tree(args.data).paths))
        train(ds, norm, torch.randint(0, n, (steps,), generator=gen))
    else:
        ph.next("load")
        logs: list[str] = []
        tree = scan_tree(args.data)
        ds = load_imagefolder(args.data, cfg.image_size, rt.device, cfg.max_image_pixels, tree=tree, store=store,
                              cache_dir=resolve_cache_dir(cfg.cache_dir), log=logs.append)
        result.update({"images": len(ds), "decoded_mb": round(ds.images.numel() / 2**20, 1), "log": logs})
        ph.next("channel stats")
        norm = Normalizer(*ds.channel_stats(), rt.device, rt.channels_last)
        if args.state == "warm":
            ph.next("read pass")
            t0 = time.perf_counter()
            order = torch.randperm(len(ds), generator=gen)
            for start in range(0, len(ds), cfg.altruistic_batch_size):
                ds.images[order[start:start + cfg.altruistic_batch_size]]
            result["read_images_per_s"] = round(len(ds) / (time.perf_counter() - t0))
            # a random subset, spread over the whole file: the disk store's worst locality
            train(ds, norm, torch.randperm(len(ds), generator=gen)[:count(len(ds))])
    result["phases"] = ph.done()
    result["peak_rss_mb"] = max(p["peak_rss_mb"] for p in result["phases"].values())
    result["phase_peaks_exact"] = ph.can_reset
    return result


def _run_child(args, store: str, state: str, cache: Path) -> dict:
    cmd = [sys.executable, __file__, str(args.data), "--child", store, "--state", state, "--cache", str(cache),
           "--preset", args.preset, "--train-images", str(args.train_images), *[a for s in args.sets for a in ("--set", s)]]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{store} ({state}) failed:\n{proc.stderr[-4000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["process_wall_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps({k: v for k, v in res.items() if k != "log"}), flush=True)
    return res


def _table(report: dict) -> str:
    b, runs = report["baseline"], report["runs"]
    cols = ["baseline (no data)", "memory store", "disk store"]

    def cell(store, state, key, phase=None, fmt="{:.0f}"):
        r = runs[store][state]
        v = r["phases"].get(phase, {}).get(key) if phase else r.get(key)
        return "–" if v is None else fmt.format(v)

    def peak(store):
        return max(runs[store]["cold"]["peak_rss_mb"], runs[store]["warm"]["peak_rss_mb"])

    rows = [
        ("decoded data (MiB)", "–", cell("memory", "warm", "decoded_mb", fmt="{:.1f}"), cell("disk", "warm", "decoded_mb", fmt="{:.1f}")),
        ("peak RSS: import torch + bsd_audit (MiB)", f"{b['phases']['import']['peak_rss_mb']:.0f}",
         cell("memory", "warm", "peak_rss_mb", "import"), cell("disk", "warm", "peak_rss_mb", "import")),
        ("peak RSS: load, cold cache = decode (MiB)", "–", cell("memory", "cold", "peak_rss_mb", "load"), cell("disk", "cold", "peak_rss_mb", "load")),
        ("peak RSS: load, warm cache (MiB)", "–", cell("memory", "warm", "peak_rss_mb", "load"), cell("disk", "warm", "peak_rss_mb", "load")),
        ("peak RSS: channel stats (MiB)", "–", cell("memory", "warm", "peak_rss_mb", "channel stats"), cell("disk", "warm", "peak_rss_mb", "channel stats")),
        ("peak RSS: training (MiB)", f"{b['phases']['train']['peak_rss_mb']:.0f}", cell("memory", "warm", "peak_rss_mb", "train"), cell("disk", "warm", "peak_rss_mb", "train")),
        ("**peak RSS, whole run (MiB)**", f"**{b['peak_rss_mb']:.0f}**", f"**{peak('memory'):.0f}**", f"**{peak('disk'):.0f}**"),
        ("**peak RSS above the baseline (MiB)**", "0", f"**{peak('memory') - b['peak_rss_mb']:.0f}**", f"**{peak('disk') - b['peak_rss_mb']:.0f}**"),
        ("load, cold cache = decode (s)", "–", cell("memory", "cold", "wall_s", "load", "{:.1f}"), cell("disk", "cold", "wall_s", "load", "{:.1f}")),
        ("load, warm cache (s)", "–", cell("memory", "warm", "wall_s", "load", "{:.2f}"), cell("disk", "warm", "wall_s", "load", "{:.2f}")),
        ("channel stats (s)", "–", cell("memory", "warm", "wall_s", "channel stats", "{:.2f}"), cell("disk", "warm", "wall_s", "channel stats", "{:.2f}")),
        ("read pass, random batches, pixels only (images/s)", "–", cell("memory", "warm", "read_images_per_s"), cell("disk", "warm", "read_images_per_s")),
        ("training (images/s)", f"{b['train_images_per_s']:.0f}", cell("memory", "warm", "train_images_per_s"), cell("disk", "warm", "train_images_per_s")),
    ]
    lines = ["| | " + " | ".join(cols) + " |", "|---|---:|---:|---:|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    r = report["ratios"]
    above = "n/a (the memory store is not above the baseline)" if r["above_baseline"] is None else f"{r['above_baseline']:.3f}"
    lines += ["", f"disk / memory, whole-run peak: {r['whole_run']:.2f}; above the baseline: {above}"]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="config override (repeatable)")
    ap.add_argument("--train-images", type=int, default=2560,
                    help="training images per store, drawn at random from the whole set (0: one whole epoch)")
    ap.add_argument("--cache-root", type=Path, help="where the cold caches go (default: a new folder in /tmp, removed after)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--markdown", type=Path)
    ap.add_argument("--child", choices=("baseline", "memory", "disk"), help=argparse.SUPPRESS)
    ap.add_argument("--state", choices=("cold", "warm"), default="warm", help=argparse.SUPPRESS)
    ap.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        args.store = args.child
        print(json.dumps(child(args)))
        return
    root = args.cache_root or Path(tempfile.mkdtemp(prefix="bsd-memory-bench-"))
    for dirpath, _, files in os.walk(args.data):  # both stores decode from the page cache
        for f in files:
            with open(os.path.join(dirpath, f), "rb") as fh:
                while fh.read(1 << 20):
                    pass
    report: dict = {"data": str(args.data), "preset": args.preset, "sets": args.sets, "train_images": args.train_images,
                    "cpus": os.cpu_count(), "load_average_before": os.getloadavg(), "runs": {}}
    try:
        report["baseline"] = _run_child(args, "baseline", "warm", root / "none")
        for store in ("memory", "disk"):
            cache = root / store
            shutil.rmtree(cache, ignore_errors=True)
            report["runs"][store] = {state: _run_child(args, store, state, cache) for state in ("cold", "warm")}
    finally:
        if args.cache_root is None:
            shutil.rmtree(root, ignore_errors=True)
    report["load_average_after"] = os.getloadavg()
    peak = {s: max(r["cold"]["peak_rss_mb"], r["warm"]["peak_rss_mb"]) for s, r in report["runs"].items()}
    base = report["baseline"]["peak_rss_mb"]
    report["ratios"] = {"whole_run": peak["disk"] / peak["memory"],
                        "above_baseline": (max(peak["disk"] - base, 0) / (peak["memory"] - base)
                                           if peak["memory"] > base else None)}
    table = _table(report)
    print(table)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    if args.markdown:
        args.markdown.write_text(table + "\n")


if __name__ == "__main__":
    main()
