"""How fast an audit runs, and how much faster its training steps are than a plain torchvision pipeline.

For one dataset and preset, in one run, on the GPU when there is one and on the CPU otherwise (the
same code path):

- images/s of the three training steps as the audit runs them (the altruistic LGA step, the main
  model's supervised warm-up step, the MixMatch step) and of evaluation (predict);
- the baseline to beat: the same model (arch, width, batch size, Adam and its learning rate) fed by
  torchvision's ImageFolder + DataLoader worker processes + per-image transforms, and the speed-up
  of the tool's supervised step over it;
- wall time per stage (decode, one epoch of each training stage, one pool update) and the projected
  time of a whole `bsd-audit split` with the preset (each stage's time per epoch times its epochs);
- one BSD epoch's two updates (MixMatch steps of the main model, the altruistic model's pass over D)
  timed one after the other and at once (config ``overlap``, training/overlap.py);
- peak memory of the host process and of the device;
- with --against FIELD=VALUE: the tool's steps and the projected split again under other settings
  (the old ones, e.g. precision=fp32), in the same run on the same data, side by side with the gain;
- with --sizes: the step timings on copies of the data of those sizes (a fixed random subset, or the
  images tiled when the folder is smaller), to show how an epoch's cost grows with N.

    PYTHONPATH=. python benchmarks/speed.py sample_data/train --preset cpu --json speed.json
    PYTHONPATH=. python benchmarks/speed.py DATA --preset cpu --steps 30 --sizes 5000 10000 50000
    PYTHONPATH=. python benchmarks/speed.py sample_data/train --preset cpu --steps 30 --against precision=fp32

Without --steps each timing runs one whole epoch over the data (MixMatch: the preset's iterations
per epoch); with --steps N each runs N batches and the per-epoch figures are extrapolated from the
rate. --sizes runs whole epochs at each size unless --size-steps caps them.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bsd_audit.api import prepare
from bsd_audit.config import Config, lga_epochs, parse_overrides, resolve_config
from bsd_audit.data import ImageDataset, Normalizer
from bsd_audit.training.loops import Stream, new_model, predict, supervised_epoch
from bsd_audit.training.overlap import overlap_enabled, side_by_side
from bsd_audit.training.progress import Progress
from bsd_audit.training.runtime import Runtime, make_runtime
from bsd_audit.method.altruistic import altruistic_epoch, new_altruistic
from bsd_audit.method.mixmatch import mixmatch_step, unsupervised_weight
from bsd_audit.training.nets import build_model

# ------------------------------------------------------------------------------------- settings
WARMUP_STEPS = 2  # untimed full batches before each timing: first calls pick kernels (and compile, with --compile)
BASELINE_PADDING = 4  # RandomCrop(size, padding=4): torchvision's usual CIFAR recipe
SUBSET_SEED = 0  # which images a subset of the data holds
MIXMATCH_COUNTED = ("labelled + unlabelled images drawn per step (2 x mixmatch_batch_size); each step also "
                    "runs mixmatch_K no-grad forward passes over the unlabelled batch and one forward+backward "
                    "over (1 + K) x batch mixed images")
HOST_MEMORY_NOTE = ("peak resident set size of this process so far, from resource.getrusage (ru_maxrss; "
                    "tracemalloc cannot see torch's allocations); the baseline's DataLoader workers are other "
                    "processes and not in it")
SCHEMA = 1


# ------------------------------------------------------------------------------------- helpers
def sync(rt: Runtime) -> None:
    if rt.device.type == "cuda":
        torch.cuda.synchronize(rt.device)


def clock(rt: Runtime, fn) -> float:
    """Seconds ``fn()`` takes, the device's queued work included."""
    sync(rt)
    t0 = time.perf_counter()
    fn()
    sync(rt)
    return time.perf_counter() - t0


def rate(images: int, seconds: float, **extra) -> dict:
    return {"images": int(images), "seconds": round(seconds, 6),
            "images_per_s": round(images / seconds, 1) if seconds > 0 else None, **extra}


def ratio(a, b):
    return round(a / b, 2) if a and b else None


def host_peak_mb() -> float:
    """Peak RSS of this process so far. (RUSAGE_CHILDREN is no use for the DataLoader workers: any
    forked child, even one torch starts at import to run a tool, inherits the parent's RSS.)"""
    unit = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is KiB on Linux, bytes on macOS
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit / 2**20, 1)


def device_peak_mb(rt: Runtime) -> float | None:
    """Peak memory torch allocated on the GPU since the last reset (None on the CPU)."""
    if rt.device.type != "cuda":
        return None
    peak = round(torch.cuda.max_memory_allocated(rt.device) / 2**20, 1)
    torch.cuda.reset_peak_memory_stats(rt.device)
    return peak


def resized(ds: ImageDataset, n: int) -> ImageDataset:
    """``n`` images of ``ds``: a fixed random subset when n <= len(ds), else every image repeated
    (tiled) until there are n. The dataset itself when n is its size (no copy)."""
    if n == len(ds):
        return ds
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(SUBSET_SEED))
    idx = order.repeat(math.ceil(n / len(ds)))[:n]
    on_dev = idx.to(ds.images.device)
    return dataclasses.replace(ds, paths=[ds.paths[i] for i in idx.tolist()], labels=ds.labels[on_dev],
                               images=ds.images[on_dev])


def warmup_images(n: int, bs: int) -> int:
    """Images of the untimed warm-up pass before timing n: WARMUP_STEPS full batches, then a batch
    of the size the timed pass ends with, so that no new shape (a new kernel, or with --compile a
    recompile) is first met inside the timing."""
    return WARMUP_STEPS * bs + n % bs


def time_lga(ds: ImageDataset, norm: Normalizer, cfg: Config, rt: Runtime, n: int) -> dict:
    """The altruistic warm-up's batch step: altruistic_epoch with LGA and no augmentation, as
    detect_target runs it (less its per-sample loss bookkeeping, a few tensor ops per batch).
    The altruistic model's plain-CE epochs during BSD run the same step."""
    model, opt = new_altruistic(cfg, ds.num_classes, rt)
    gen, bs = rt.generator(cfg.seed), cfg.altruistic_batch_size
    first = clock(rt, lambda: altruistic_epoch(model, opt, resized(ds, warmup_images(n, bs)), norm, cfg, rt, gen, lga=True))
    part = resized(ds, n)
    seconds = clock(rt, lambda: altruistic_epoch(model, opt, part, norm, cfg, rt, gen, lga=True))
    return rate(n, seconds, batch_size=bs, steps=math.ceil(n / bs), first_steps_s=round(first, 3))


def time_supervised(ds: ImageDataset, norm: Normalizer, cfg: Config, rt: Runtime, n: int):
    """The main model's warm-up step: batch augmentation on the device, CE, Adam (supervised_epoch as
    run_bsd calls it). Returns the timing and the model (evaluation is timed with it)."""
    model = new_model(cfg, ds.num_classes, rt)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.warmup_lr)
    gen, bs = rt.generator(cfg.seed), cfg.warmup_batch_size

    def epoch(d: ImageDataset):
        return supervised_epoch(model, opt, d, torch.arange(len(d), device=rt.device), norm, cfg, rt, gen)

    first = clock(rt, lambda: epoch(resized(ds, warmup_images(n, bs))))
    part = resized(ds, n)
    seconds = clock(rt, lambda: epoch(part))
    return rate(n, seconds, batch_size=bs, steps=math.ceil(n / bs), first_steps_s=round(first, 3)), model


def time_eval(model, ds: ImageDataset, norm: Normalizer, cfg: Config, rt: Runtime, n: int) -> dict:
    """predict over n images: what a pool update runs over D, once per model."""
    bs = cfg.eval_batch_size
    first = clock(rt, lambda: predict(model, resized(ds, warmup_images(n, bs)), norm, rt, bs))
    part = resized(ds, n)
    seconds = clock(rt, lambda: predict(model, part, norm, rt, bs))
    return rate(n, seconds, batch_size=bs, steps=math.ceil(n / bs), first_steps_s=round(first, 3))


def steps_images(bs: int, steps: int | None, n: int) -> int:
    """Images one timing covers: the whole data, or ``steps`` batches of it."""
    return n if steps is None else steps * bs


def time_epoch_steps(ds: ImageDataset, norm: Normalizer, cfg: Config, rt: Runtime, steps: int | None,
                     n: int) -> tuple[dict, dict, dict]:
    """The LGA, supervised and evaluation timings on n images of ``ds`` (whole epochs, or ``steps`` batches)."""
    lga = time_lga(ds, norm, cfg, rt, steps_images(cfg.altruistic_batch_size, steps, n))
    sup, model = time_supervised(ds, norm, cfg, rt, steps_images(cfg.warmup_batch_size, steps, n))
    ev = time_eval(model, ds, norm, cfg, rt, steps_images(cfg.eval_batch_size, steps, n))
    return lga, sup, ev


class MixMatchSteps:
    """mixmatch_step as the BSD epoch loop runs it, on a fresh main model: labelled batches streamed
    from a clean pool, unlabelled ones from the poison pool (here a random alpha share of D is called
    clean). ``run(k)`` takes k steps; ``drawn`` counts the images the batches held."""

    def __init__(self, ds: ImageDataset, norm: Normalizer, cfg: Config, rt: Runtime):
        self.ds, self.norm, self.cfg, self.rt = ds, norm, cfg, rt
        self.model = new_model(cfg, ds.num_classes, rt)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.mixmatch_lr)
        self.gen, self.rng = rt.generator(cfg.seed), np.random.default_rng(cfg.seed)
        clean = np.zeros(len(ds), dtype=bool)
        clean[self.rng.permutation(len(ds))[:min(len(ds) - 1, max(1, round(cfg.alpha * len(ds))))]] = True
        bs = cfg.mixmatch_batch_size
        self.labelled = Stream(torch.from_numpy(np.flatnonzero(clean)).to(rt.device), bs, self.gen)
        self.unlabelled = Stream(torch.from_numpy(np.flatnonzero(~clean)).to(rt.device), bs, self.gen)
        self.drawn = 0

    def run(self, k: int) -> float:
        cfg = self.cfg
        total = torch.zeros((), device=self.rt.device)
        for it in range(k):
            idx_l, idx_u = self.labelled.next(), self.unlabelled.next()
            self.drawn += len(idx_l) + len(idx_u)
            w = unsupervised_weight(cfg.T1, it, k, cfg.mixmatch_lambda_u, cfg.mixmatch_rampup)
            total += mixmatch_step(self.model, self.opt, self.ds, idx_l, idx_u, self.norm, cfg, self.rt, self.gen,
                                   self.rng, w)
        return float(total / k)  # the epoch's one host sync


def time_mixmatch(ds: ImageDataset, norm: Normalizer, cfg: Config, rt: Runtime, steps: int) -> dict:
    """The MixMatch step's throughput (MixMatchSteps)."""
    mm = MixMatchSteps(ds, norm, cfg, rt)
    first = clock(rt, lambda: mm.run(WARMUP_STEPS))
    mm.drawn = 0
    seconds = clock(rt, lambda: mm.run(steps))
    return rate(mm.drawn, seconds, batch_size=cfg.mixmatch_batch_size, steps=steps, K=cfg.mixmatch_K,
                first_steps_s=round(first, 3), seconds_per_step=round(seconds / steps, 5), counted=MIXMATCH_COUNTED)


def time_overlap(ds: ImageDataset, norm: Normalizer, cfg: Config, rt: Runtime, steps: int, n: int) -> dict:
    """One BSD epoch's two updates, as run_bsd runs them between T1 and T2: ``steps`` MixMatch steps
    of the main model and the altruistic model's CE pass over ``n`` images, one after the other and
    then at once (training/overlap.py, config ``overlap``)."""
    mm = MixMatchSteps(ds, norm, cfg, rt)
    alt, alt_opt = new_altruistic(cfg, ds.num_classes, rt)
    alt_gen = rt.generator(cfg.seed + 1)
    part = resized(ds, n)

    def pair(enabled: bool, k: int, d: ImageDataset) -> float:
        return clock(rt, lambda: side_by_side(lambda: mm.run(k), lambda: altruistic_epoch(
            alt, alt_opt, d, norm, cfg, rt, alt_gen, lga=False), rt, enabled))

    pair(True, WARMUP_STEPS, resized(ds, warmup_images(0, cfg.altruistic_batch_size)))  # kernels, both threads
    one_after, at_once = pair(False, steps, part), pair(True, steps, part)
    return {"mixmatch_steps": steps, "altruistic_images": n, "sequential_s": round(one_after, 3),
            "overlapped_s": round(at_once, 3), "speedup": round(one_after / at_once, 2) if at_once else None}


def baseline_model(cfg: Config, num_classes: int, rt: Runtime) -> torch.nn.Module:
    """The baseline's network: the tool's main model at the working size (from 64 px the ImageNet
    form, as the audit builds it), plain contiguous fp32."""
    return build_model(cfg.arch, num_classes, cfg.width, cfg.image_size).to(rt.device)


def time_baseline(data: Path, cfg: Config, rt: Runtime, n: int, workers: int,
                  mean, std, like_tool: bool) -> dict:
    """The same model and optimiser fed the way a typical torchvision script feeds it: ImageFolder,
    a DataLoader with worker processes, per-image PIL transforms, then CE. The timing covers an
    epoch of n images from creating the loader's iterator (starting its workers, as every epoch
    does by default) to the last step; ``start_s`` is the time to the first batch. The model is
    warmed up by a short untimed epoch first. Plain, the model runs as such a script runs it:
    contiguous fp32 (TF32 matmuls on a GPU, as the tool's runtime allows them process-wide);
    ``like_tool`` gives it the tool's memory format, precision and compile setting, so that the
    ratio is the data path's alone."""
    from torch.utils.data import DataLoader, RandomSampler
    from torchvision import datasets, transforms

    size, bs = cfg.image_size, cfg.warmup_batch_size
    tf = transforms.Compose([
        transforms.Resize((size, size)), transforms.RandomCrop(size, padding=BASELINE_PADDING),
        transforms.RandomHorizontalFlip(), transforms.ToTensor(), transforms.Normalize(mean, std)])
    folder = datasets.ImageFolder(str(data), transform=tf)
    model = baseline_model(cfg, len(folder.classes), rt)
    channels_last = like_tool and rt.channels_last
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if like_tool and cfg.compile:
        model.compile()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.warmup_lr)
    cuda = rt.device.type == "cuda"
    torch.manual_seed(cfg.seed)

    def loader(images: int):
        return DataLoader(folder, batch_size=bs, sampler=RandomSampler(folder, num_samples=images),
                          num_workers=workers, pin_memory=cuda)

    def step(x, y, total):
        x, y = x.to(rt.device, non_blocking=True), y.to(rt.device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with rt.autocast() if like_tool else contextlib.nullcontext():
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.detach()

    def epoch(images: int) -> float:
        """Seconds to the first batch; the whole epoch is timed by the caller."""
        model.train()
        total = torch.zeros((), device=rt.device)
        t0 = time.perf_counter()
        start = None
        for x, y in loader(images):
            if start is None:
                start = time.perf_counter() - t0
            step(x, y, total)
        float(total)  # one host sync per epoch, as the tool's loop
        return start or 0.0

    first = clock(rt, lambda: epoch(warmup_images(n, bs)))
    start = [0.0]
    seconds = clock(rt, lambda: start.__setitem__(0, epoch(n)))
    steady = (n - min(n, bs)) / (seconds - start[0]) if seconds > start[0] and n > bs else None
    return rate(n, seconds, batch_size=bs, steps=math.ceil(n / bs), first_steps_s=round(first, 3),
                start_s=round(start[0], 4), steady_images_per_s=None if steady is None else round(steady, 1),
                workers=workers, like_tool=like_tool, channels_last=channels_last,
                precision=str(rt.amp_dtype).replace("torch.", "") if like_tool and rt.amp_dtype else "fp32",
                transforms=[type(t).__name__ for t in tf.transforms])


def project(cfg: Config, n: int, num_classes: int, decode_rate: float, lga: float, sup: float,
            mm_step_s: float, ev: float) -> tuple[list[dict], float]:
    """Stages of `split` with this config on n images: seconds per epoch x epochs. Checkpoint writes
    and the verdict are left out (small next to the training)."""
    n_nt = n * (num_classes - 1) / num_classes  # D_nt: every class but the target (classes taken as equal)
    T1, T2, T3 = cfg.T1, cfg.T2, cfg.T3
    rows = [
        ("decode (scan, decode, fingerprint, channel stats)", 1, n / decode_rate),
        ("altruistic warm-up epoch (LGA step, over D)", lga_epochs(cfg, n), n / lga),
        ("held-out check epoch (supervised step, over D less each class's held-out share)", cfg.holdout_epochs,
         n * (1 - cfg.holdout_share) / sup),
        ("held-out check prediction (predict over the held-out share)", 1 if cfg.holdout_epochs else 0,
         n * cfg.holdout_share / ev),
        ("main warm-up epoch (supervised step, over D_nt)", T1, n_nt / sup),
        ("altruistic epoch in BSD (same step, CE, over D)", min(T2, T3), n / lga),
        ("OSS at T1 (predict over D, with features)", 1, n / ev),
        ("MixMatch epoch (mixmatch_iterations steps)", T3 - T1, cfg.mixmatch_iterations * mm_step_s),
        ("pool update (predict over D, main model)", max(0, T3 - cfg.stage2_start), n / ev),
        ("altruistic model at a pool update (predict over D, until it is frozen at T2)",
         max(0, min(T2, T3 - 1) - cfg.stage2_start + 1), n / ev),
    ]
    if cfg.stop_after_init:  # split --init-only: stops at T1
        rows = [(s, min(c, T1) if "altruistic epoch in BSD" in s else c, e) for s, c, e in rows
                if not s.startswith(("MixMatch", "pool update", "altruistic model at"))]
    out = [{"stage": s, "seconds_each": round(e, 4), "count": c, "seconds": round(e * c, 2)} for s, c, e in rows]
    return out, round(sum(r["seconds"] for r in out), 1)


def table(title: str, header: list[str], rows: list[list]) -> str:
    def cell(v) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}" if abs(v) >= 1 else f"{v:.3f}"
        return f"{v:,}" if isinstance(v, int) else str(v)

    cells = [header] + [[cell(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([f"\n{title}", line(header), line(["-" * w for w in widths])] + [line(r) for r in cells[1:]])


def render(res: dict) -> str:
    steps, base, m = res["steps"], res["baseline"], res["memory"]
    th = res["threads"]
    out = [
        f"data {res['data']}: {res['num_images']:,} images, {res['num_classes']} classes, {res['image_size']}px",
        f"preset {res['preset']}: {res['arch']} width {res['width']:g}, device {res['device']}, precision {res['precision']}, "
        f"channels_last {res['channels_last']}, compile {res['compile']}",
        f"threads: intra-op {th['intra_op']}, inter-op {th['inter_op']}, cores {th['cpu_count']} (config threads={th['config']}; 0 = every core)",
        f"timed: {res['timed']}; warm-up s: the untimed pass before each timing (kernel choice, compiling)",
    ]
    names = [("lga", "altruistic LGA step (no aug)"), ("supervised", "supervised step (batch aug + CE)"),
             ("mixmatch", "MixMatch step (labelled + unlabelled)"), ("eval", "eval (predict)")]
    rows = [[label, steps[k]["batch_size"], steps[k]["images"], steps[k]["seconds"], steps[k]["images_per_s"],
             steps[k]["first_steps_s"]] for k, label in names]
    rows.append([f"baseline: torchvision, {base['workers']} workers", base["batch_size"], base["images"], base["seconds"],
                 base["images_per_s"], base["first_steps_s"]])
    out.append(table("Steps", ["step", "batch", "images", "seconds", "images/s", "warm-up s"], rows))
    out.append(f"MixMatch counts {MIXMATCH_COUNTED}.")
    out.append(f"baseline: {', '.join(base['transforms'])}; loader start {base['start_s']:.3f} s, "
               f"{base['steady_images_per_s'] or '-'} images/s after it; model {base['precision']}, "
               f"channels_last {base['channels_last']}")
    sp = res["speedup_supervised"]
    out.append(f"speed-up of the supervised step, tool / torchvision baseline: {sp['ratio']}x "
               f"(after the loader start: {sp['steady_ratio'] or '-'}x)")
    ov = res["overlap"]
    out.append(f"one BSD epoch's two updates ({ov['mixmatch_steps']} MixMatch steps + the altruistic pass over "
               f"{ov['altruistic_images']:,} images): {ov['sequential_s']} s one after the other, {ov['overlapped_s']} s "
               f"at once ({ov['speedup']}x); this config {'overlaps' if ov['used_by_config'] else 'does not overlap'} "
               "them (overlap=auto: on a GPU only)")
    out.append(table(f"Stages of `split`, preset {res['preset']} ({res['stage_figures']})",
                     ["stage", "s each", "count", "seconds"],
                     [[r["stage"], r["seconds_each"], r["count"], r["seconds"]] for r in res["stages"]]))
    out.append(f"projected split: {res['projected_split_s']:,.1f} s ({res['projected_split_s'] / 60:.1f} min), "
               "checkpoint writes left out")
    ag = res.get("against")
    if ag:
        rows = [[label, ag["steps"][k]["images_per_s"], steps[k]["images_per_s"],
                 ratio(steps[k]["images_per_s"], ag["steps"][k]["images_per_s"])] for k, label in names]
        rows.append(["supervised / torchvision baseline", ag["speedup_supervised"], sp["ratio"], None])
        rows.append(["projected split (s)", ag["projected_split_s"], res["projected_split_s"],
                     ratio(ag["projected_split_s"], res["projected_split_s"])])
        out.append(table(f"Side by side: {' '.join(ag['overrides'])} ({ag['device']}) against this config ({res['device']})",
                         ["step (images/s)", " ".join(ag["overrides"]), "this config", "gain"], rows))
    dev = m["device_peak_mb"]
    out.append(f"\nhost peak RSS: {m['host_peak_mb']['at_start']:,.0f} MB at start (imports), "
               f"{m['host_peak_mb']['after_decode']:,.0f} MB after decode, "
               f"{m['host_peak_mb']['after_steps']:,.0f} MB after the tool's steps, "
               f"{m['host_peak_mb']['after_baseline']:,.0f} MB after the baseline; "
               f"the decoded data is {m['dataset_tensor_mb']:,.1f} MB"
               + ("" if dev is None else f"; device peak: " + ", ".join(f"{k} {v:,.0f} MB" for k, v in dev.items())))
    out.append(f"({HOST_MEMORY_NOTE})")
    if res["sizes"]:
        rows = [[s["n"], s["tensor_mb"], s["lga"]["images_per_s"], s["supervised"]["images_per_s"], s["eval"]["images_per_s"],
                 s["lga_epoch_s"], s["warmup_epoch_s"], s["pool_update_s"], s["projected_split_s"],
                 s["host_peak_mb"], s["device_peak_mb"]] for s in res["sizes"]]
        out.append(table(f"Sizes ({res['sizes_timed']})",
                         ["N", "tensor MB", "LGA img/s", "sup img/s", "eval img/s", "LGA epoch s", "warm-up epoch s",
                          "pool update s", "split s", "host MB", "device MB"], rows))
    return "\n".join(out)


# ------------------------------------------------------------------------------------- main
def report(res: dict, text: str, json_out: Path | None) -> dict:
    """Print the tables; write the results as JSON when asked."""
    print(text, flush=True)
    if json_out is not None:
        json_out.write_text(json.dumps(res, indent=2) + "\n")
    return res


def run_arguments(ap: argparse.ArgumentParser) -> None:
    """The data, the config and the baseline's loader: the arguments speed.py and roofline.py share."""
    ap.add_argument("data", type=Path, help="ImageFolder tree (DATA/<class>/<image>)")
    ap.add_argument("--preset", default="cpu", help="paper | fast | cpu | auto (default cpu)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="FIELD=VALUE", help="config override")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="baseline DataLoader workers (default: cores)")
    ap.add_argument("--json", dest="json_out", type=Path, default=None, help="also write the results here")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    run_arguments(ap)
    ap.add_argument("--steps", type=int, default=None, help="batches per timing (default: one whole epoch)")
    ap.add_argument("--sizes", type=int, nargs="*", default=[], help="also time these dataset sizes")
    ap.add_argument("--size-steps", type=int, default=None, help="batches per timing at each size (default: whole epochs)")
    ap.add_argument("--baseline-like-tool", action="store_true",
                    help="give the baseline's model the tool's memory format, precision and compile setting")
    ap.add_argument("--compile", action="store_true", help="torch.compile the models (the compile config field)")
    ap.add_argument("--against", action="append", default=[], metavar="FIELD=VALUE",
                    help="also time the tool's steps with these overrides on top, in the same run on the same data "
                         "(e.g. precision=fp32: the settings before the bf16 probe), side by side with this config's")
    args = ap.parse_args(argv)
    if any(v is not None and v < 1 for v in (args.steps, args.size_steps)) or any(n < 2 for n in args.sizes):
        ap.error("--steps and --size-steps must be at least 1, every --sizes entry at least 2")
    if args.workers < 0:
        ap.error("--workers must be 0 (load in the main process) or more")
    overrides = parse_overrides(args.sets)
    if args.compile:
        overrides["compile"] = "true"
    cfg = resolve_config(args.preset, overrides)
    other = resolve_config(args.preset, {**overrides, **parse_overrides(args.against)}) if args.against else None

    # ---- decode: the audit's own data stage (runtime, seeds, scan, decode, channel statistics)
    at_start = host_peak_mb()  # torch and the tool imported, nothing loaded
    t0 = time.perf_counter()
    rt, ds, norm, cfg, _ = prepare(args.data, cfg, Progress())
    sync(rt)
    decode_s = time.perf_counter() - t0
    N, C = len(ds), ds.num_classes
    mem = {"at_start": at_start, "after_decode": host_peak_mb()}
    dev_mem = {"decode": device_peak_mb(rt)}

    # ---- the tool's steps on the whole data (or --steps batches of it)
    lga = time_lga(ds, norm, cfg, rt, steps_images(cfg.altruistic_batch_size, args.steps, N))
    dev_mem["lga"] = device_peak_mb(rt)
    sup, model = time_supervised(ds, norm, cfg, rt, steps_images(cfg.warmup_batch_size, args.steps, N))
    dev_mem["supervised"] = device_peak_mb(rt)
    ev = time_eval(model, ds, norm, cfg, rt, steps_images(cfg.eval_batch_size, args.steps, N))
    dev_mem["eval"] = device_peak_mb(rt)
    del model
    mm = time_mixmatch(ds, norm, cfg, rt, args.steps or cfg.mixmatch_iterations)
    dev_mem["mixmatch"] = device_peak_mb(rt)
    overlap = time_overlap(ds, norm, cfg, rt, args.steps or cfg.mixmatch_iterations,
                           steps_images(cfg.altruistic_batch_size, args.steps, N))
    dev_mem["overlap"] = device_peak_mb(rt)
    mem["after_steps"] = host_peak_mb()

    # ---- the baseline: same model, same number of images, torchvision's data path
    mean, std = (norm.mean / 255).flatten().tolist(), (norm.std / 255).flatten().tolist()
    base = time_baseline(args.data, cfg, rt, sup["images"], args.workers, mean, std, args.baseline_like_tool)
    dev_mem["baseline"] = device_peak_mb(rt)
    mem["after_baseline"] = host_peak_mb()

    stages, total = project(cfg, N, C, N / decode_s, lga["images_per_s"], sup["images_per_s"],
                            mm["seconds_per_step"], ev["images_per_s"])

    # ---- the same steps under --against, on the same decoded data and the same threads
    against = None
    if other is not None:
        if other.image_size == "auto":  # the same working size as the run it is set against
            other = other.model_copy(update={"image_size": cfg.image_size})
        rt_o = make_runtime(other)
        o_lga, o_sup, o_ev = time_epoch_steps(ds, norm, other, rt_o, args.steps, N)
        o_mm = time_mixmatch(ds, norm, other, rt_o, args.steps or other.mixmatch_iterations)
        _, o_total = project(other, N, C, N / decode_s, o_lga["images_per_s"], o_sup["images_per_s"],
                             o_mm["seconds_per_step"], o_ev["images_per_s"])
        against = {"overrides": args.against, "device": rt_o.describe(), "precision": rt_o.precision,
                   "steps": {"lga": o_lga, "supervised": o_sup, "mixmatch": o_mm, "eval": o_ev},
                   "projected_split_s": o_total,
                   "speedup_supervised": ratio(o_sup["images_per_s"], base["images_per_s"])}
        mem["after_against"] = host_peak_mb()

    # ---- sizes: whole epochs (or --size-steps batches) on N images, subset or tiled
    sizes = []
    for n in args.sizes:
        sub = resized(ds, n)
        s_lga, s_sup, s_ev = time_epoch_steps(sub, norm, cfg, rt, args.size_steps, n)
        del sub
        _, s_total = project(cfg, n, C, N / decode_s, s_lga["images_per_s"], s_sup["images_per_s"],
                                    mm["seconds_per_step"], s_ev["images_per_s"])
        sizes.append({
            "n": n, "tensor_mb": round(n * 3 * cfg.image_size ** 2 / 2**20, 1), "lga": s_lga, "supervised": s_sup,
            "eval": s_ev, "lga_epoch_s": round(n / s_lga["images_per_s"], 4),
            "warmup_epoch_s": round(n * (C - 1) / C / s_sup["images_per_s"], 4),
            "pool_update_s": round(2 * n / s_ev["images_per_s"], 4), "projected_split_s": s_total,
            "host_peak_mb": host_peak_mb(), "device_peak_mb": device_peak_mb(rt),
        })

    res = {
        "schema": SCHEMA, "data": str(args.data), "num_images": N, "num_classes": C, "image_size": cfg.image_size,
        "preset": cfg.preset, "arch": cfg.arch, "width": cfg.width, "device": rt.describe(),
        "device_type": rt.device.type, "precision": rt.precision,
        "channels_last": rt.channels_last, "compile": cfg.compile,
        "threads": {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads(),
                    "cpu_count": os.cpu_count(), "config": cfg.threads},
        "torch": torch.__version__, "steps_per_timing": args.steps,
        "timed": "one whole epoch per step (MixMatch: mixmatch_iterations steps)" if args.steps is None
                 else f"{args.steps} batches per step, epochs extrapolated",
        "steps": {"lga": lga, "supervised": sup, "mixmatch": mm, "eval": ev},
        "baseline": base,
        "overlap": {**overlap, "used_by_config": overlap_enabled(cfg, rt)},
        "speedup_supervised": {"ratio": ratio(sup["images_per_s"], base["images_per_s"]),
                               "steady_ratio": ratio(sup["images_per_s"], base["steady_images_per_s"])},
        "decode": rate(N, decode_s),
        "stages": stages, "stage_figures": "measured epochs" if args.steps is None else "extrapolated from --steps",
        "projected_split_s": total,
        "memory": {"host_peak_mb": mem, "device_peak_mb": None if rt.device.type != "cuda" else dev_mem,
                   "dataset_tensor_mb": round(ds.images.numel() / 2**20, 1),
                   "host_note": HOST_MEMORY_NOTE},
        "against": against,
        "sizes": sizes,
        "sizes_timed": "whole epochs" if args.size_steps is None else f"{args.size_steps} batches per step",
        "config": cfg.to_dict(),
    }
    return report(res, render(res), args.json_out)


if __name__ == "__main__":
    main()
