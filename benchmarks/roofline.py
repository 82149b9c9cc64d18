"""The fastest the main model's training step can run on this machine, against what it runs at.

For one dataset and preset, on the GPU when there is one and on the CPU otherwise:

- the floating-point work of one supervised step per image: forward and backward of the preset's
  main model (convolutions and the linear head; torch's FlopCounterMode), at the working size;
- the machine's dense rate: the best GFLOP/s of large square matmuls and wide 3x3 convolutions at
  the run's precision (fp32, or bf16 where the probe chose it), as fast as its libraries go;
- the ceiling: that rate over the work per image, the images/s of a step whose every FLOP ran at
  the dense rate and whose every other operation (batch norm, activations, Adam, data) cost nothing;
- what the step runs at: the supervised step as the audit runs it and the torchvision pipeline
  (both from speed.py), and, from the profiler, the time the convolutions take inside real steps
  and the rate they reach;
- whether a target multiple of the torchvision pipeline (--target, 3 by default) fits under the
  ceiling at all.

    PYTHONPATH=. python benchmarks/roofline.py sample_data/train --preset cpu --steps 30 --json roofline.json

The ceiling is generous: convolutions never quite reach a large matmul's rate. A target above it
cannot be met by any change to the tool's code on this machine and precision; only less work per
image (a smaller network or working size, fewer epochs) or faster arithmetic can meet it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
import speed  # noqa: E402  (the step and baseline timings, shared with speed.py)

from bsd_audit.api import prepare  # noqa: E402
from bsd_audit.config import parse_overrides, resolve_config  # noqa: E402
from bsd_audit.training.loops import new_model, supervised_epoch  # noqa: E402
from bsd_audit.training.progress import Progress  # noqa: E402
from bsd_audit.training.runtime import Runtime  # noqa: E402

MATMUL_SIDES = {"cpu": (1024, 2048), "cuda": (4096, 8192)}
DENSE_CONVS = ((128, 128, 16), (128, 256, 8), (64, 512, 8))  # (batch, channels in = out, side): wide 3x3 layers
DENSE_REPEATS = 3
# The two operators every convolution goes through, forward and backward, whatever the backend: their
# inclusive time holds the backend's kernels (on a GPU, cuDNN's kernels carry no "conv" in their names).
CONV_OPS = ("aten::convolution", "aten::convolution_backward")
SCHEMA = 1


def step_flops(model: torch.nn.Module, rt: Runtime, batch: int, size: int, classes: int) -> dict:
    """FLOPs of one training step (forward, loss, backward) and of its forward alone, per image."""
    x = torch.randn(batch, 3, size, size, device=rt.device)
    if rt.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, classes, (batch,), device=rt.device)
    model.train()
    with FlopCounterMode(display=False) as forward_only:
        with torch.no_grad(), rt.autocast():
            model(x)
    with FlopCounterMode(display=False) as whole:
        with rt.autocast():
            logits = model(x)
        F.cross_entropy(logits.float(), y).backward()
    model.zero_grad(set_to_none=True)
    return {"step_per_image": whole.get_total_flops() / batch, "forward_per_image": forward_only.get_total_flops() / batch}


def dense_rate(rt: Runtime) -> dict:
    """Best GFLOP/s the device's libraries reach at the run's precision on large dense work: square
    matmuls and wide 3x3 convolutions (in the run's memory format), best over shapes and repeats."""
    dtype = rt.amp_dtype or torch.float32
    memory = torch.channels_last if rt.channels_last else torch.contiguous_format
    trials = []
    for side in MATMUL_SIDES.get(rt.device.type, MATMUL_SIDES["cpu"]):
        a = torch.randn(side, side, device=rt.device, dtype=dtype)
        b = torch.randn(side, side, device=rt.device, dtype=dtype)
        trials.append((f"matmul {side}", 2 * side ** 3, lambda a=a, b=b: a @ b))
    for batch, channels, hw in DENSE_CONVS:
        x = torch.randn(batch, channels, hw, hw, device=rt.device, dtype=dtype).contiguous(memory_format=memory)
        w = torch.randn(channels, channels, 3, 3, device=rt.device, dtype=dtype).contiguous(memory_format=memory)
        trials.append((f"conv 3x3 {channels}ch {hw}px batch {batch}", 2 * batch * channels ** 2 * 9 * hw * hw,
                       lambda x=x, w=w: F.conv2d(x, w, padding=1)))
    best = {"gflops": 0.0, "kernel": None}
    with torch.no_grad():
        for name, flops, fn in trials:
            fn()  # first call: library and kernel selection
            for _ in range(DENSE_REPEATS):
                gflops = flops / speed.clock(rt, fn) / 1e9
                if gflops > best["gflops"]:
                    best = {"gflops": gflops, "kernel": name}
    return {"gflops": round(best["gflops"], 1), "kernel": best["kernel"], "dtype": str(dtype).replace("torch.", ""),
            "threads": torch.get_num_threads()}


def conv_time(model: torch.nn.Module, ds, norm, cfg, rt: Runtime, images: int) -> dict:
    """Seconds of ``images`` images of supervised steps under the profiler, and the share of the
    device's time the convolutions take (forward and backward, their kernels included)."""
    opt = torch.optim.Adam(model.parameters(), lr=cfg.warmup_lr)
    gen, bs = rt.generator(cfg.seed), cfg.warmup_batch_size

    def epoch(part) -> None:
        supervised_epoch(model, opt, part, torch.arange(len(part), device=rt.device), norm, cfg, rt, gen)

    epoch(speed.resized(ds, speed.warmup_images(images, bs)))  # untimed: kernel selection
    part = speed.resized(ds, images)
    cuda = rt.device.type == "cuda"
    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
        seconds = speed.clock(rt, lambda: epoch(part))
    events = prof.key_averages()
    total = sum(e.self_device_time_total if cuda else e.self_cpu_time_total for e in events)
    conv = sum(e.device_time_total if cuda else e.cpu_time_total for e in events if e.key in CONV_OPS)
    return {"images": images, "seconds": round(seconds, 4), "conv_s": round(conv / 1e6, 4),
            "conv_share": round(conv / total, 3) if total else None,
            "measured_on": "device kernel time" if cuda else "host time"}


def render(res: dict) -> str:
    fl, dense, conv = res["flops"], res["dense"], res["convolutions"]
    rows = [
        ("FLOPs per image, one training step (forward only)",
         f"{fl['step_per_image'] / 1e6:,.1f} M ({fl['forward_per_image'] / 1e6:,.1f} M)"),
        (f"dense rate ({dense['dtype']}, best: {dense['kernel']}, {dense['threads']} threads)", f"{dense['gflops']:,.1f} GFLOP/s"),
        ("ceiling: dense rate / FLOPs per image", f"{res['ceiling_images_per_s']:,.0f} images/s"),
        ("supervised step as the audit runs it", f"{res['supervised_images_per_s']:,.0f} images/s ({res['share_of_ceiling']:.0%} of the ceiling)"),
        ("convolutions inside those steps", f"{conv['conv_share']:.0%} of the step's time, {res['conv_gflops']:,.1f} GFLOP/s"),
        ("torchvision pipeline", f"{res['baseline_images_per_s']:,.0f} images/s"),
        (f"target: {res['target']:g}x the torchvision pipeline", f"{res['target_images_per_s']:,.0f} images/s: "
         + ("under the ceiling" if res["target_fits"] else f"above the ceiling ({res['target_over_ceiling']:.2f}x it)")),
    ]
    lines = [f"## Roofline: {res['data']} ({res['num_images']} images, {res['image_size']} px), {res['arch']} width "
             f"{res['width']:g}, batch {res['batch_size']}, {res['device']}", "", "| | |", "| --- | --- |"]
    lines += [f"| {a} | {b} |" for a, b in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    speed.run_arguments(ap)
    ap.add_argument("--steps", type=int, default=30, help="batches per timing (default 30)")
    ap.add_argument("--target", type=float, default=3.0, help="the multiple of the torchvision pipeline to test (default 3)")
    args = ap.parse_args(argv)
    if args.steps < 1 or args.workers < 0 or args.target <= 0:
        ap.error("--steps must be at least 1, --workers 0 or more, --target above 0")
    rt, ds, norm, cfg, _ = prepare(args.data, resolve_config(args.preset, parse_overrides(args.sets)), Progress())
    bs = cfg.warmup_batch_size
    images = min(args.steps * bs, max(len(ds), bs))

    model = new_model(cfg, ds.num_classes, rt)
    flops = step_flops(model, rt, bs, cfg.image_size, ds.num_classes)
    dense = dense_rate(rt)
    sup, _ = speed.time_supervised(ds, norm, cfg, rt, images)
    conv = conv_time(model, ds, norm, cfg, rt, images)
    mean, std = (norm.mean / 255).flatten().tolist(), (norm.std / 255).flatten().tolist()
    base = speed.time_baseline(args.data, cfg, rt, sup["images"], args.workers, mean, std, like_tool=False)

    ceiling = dense["gflops"] * 1e9 / flops["step_per_image"]
    conv_flops = flops["step_per_image"] * conv["images"]  # the head's matmul is a rounding error beside them
    target = args.target * base["images_per_s"]
    res = {
        "schema": SCHEMA, "data": str(args.data), "num_images": len(ds), "image_size": cfg.image_size,
        "preset": cfg.preset, "arch": cfg.arch, "width": cfg.width, "batch_size": bs, "device": rt.describe(),
        "device_type": rt.device.type, "precision": rt.precision, "torch": torch.__version__,
        "flops": flops, "dense": dense, "ceiling_images_per_s": round(ceiling, 1),
        "supervised": sup, "supervised_images_per_s": sup["images_per_s"],
        "share_of_ceiling": round(sup["images_per_s"] / ceiling, 3),
        "convolutions": conv,
        "conv_gflops": round(conv_flops / conv["conv_s"] / 1e9, 1) if conv["conv_s"] else None,
        "baseline": base, "baseline_images_per_s": base["images_per_s"],
        "target": args.target, "target_images_per_s": round(target, 1), "target_fits": target <= ceiling,
        "target_over_ceiling": round(target / ceiling, 3),
        "timed_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    return speed.report(res, render(res), args.json_out)


if __name__ == "__main__":
    main()
