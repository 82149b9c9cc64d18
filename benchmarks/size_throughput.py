"""Decode and training throughput by working size, with both model forms (issue 21's table).

For each working size and each form of the preset's network (the CIFAR form: full-resolution first
layers; the ImageNet form: stride-2 stem and max-pool, a fourth of the side; training/nets.py), in a
process of its own so that each gets its own peak memory:

- decode: every image of DATA decoded and resized to the size, into an empty decode cache (images/s);
- the altruistic LGA step, the supervised step (batch augmentation + CE), the MixMatch step and
  evaluation (predict), ``--steps`` batches each after an untimed warm-up (images/s, benchmarks/speed.py's
  timings);
- the projected time of a whole `split` with the preset at that size, from those per-image figures
  (speed.py's ``project``), for DATA or, with --project-images/--project-classes, for a set of that
  size (an ImageNet-30-sized audit: 39,000 images, 30 classes);
- forward GFLOPs per image (torch's FLOP counter) and the model's parameters;
- peak host memory of the process (ru_maxrss) and, on a GPU, peak device memory.

The audit itself picks the form from the size (the ImageNet form from 64 px); here both run at every
size, so that the table shows what the choice saves. Prints a markdown table; --json writes the rows.

    PYTHONPATH=. python benchmarks/size_throughput.py ../shared/data/clothing/train --preset cpu \\
        --sizes 32 64 128 224 --steps 4 --json size_throughput.json
    PYTHONPATH=. python benchmarks/size_throughput.py DATA --preset fast --sizes 224 --forms imagenet \\
        --project-images 39000 --project-classes 30       # ImageNet-30 on a GPU
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

FORMS = ("cifar", "imagenet")


def child(data: Path, preset: str, sets: list[str], size: int, form: str, steps: int,
          project_images: int | None, project_classes: int | None) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from bsd_audit.api import prepare
    from bsd_audit.config import parse_overrides, resolve_config
    from bsd_audit.training import nets
    from bsd_audit.training.progress import Progress
    from speed import device_peak_mb, host_peak_mb, project, time_eval, time_lga, time_mixmatch, time_supervised

    # The form follows the size in the audit; forcing it here puts both forms at every size.
    nets.IMAGENET_FROM = 0 if form == "imagenet" else 10**9
    with tempfile.TemporaryDirectory() as cache:
        overrides = {**parse_overrides(sets), "image_size": size, "cache_dir": cache}
        cfg = resolve_config(preset, overrides)
        t0 = time.perf_counter()
        rt, ds, norm, cfg, _ = prepare(data, cfg, Progress())
        decode_s = time.perf_counter() - t0
        lga = time_lga(ds, norm, cfg, rt, steps * cfg.altruistic_batch_size)
        sup, model = time_supervised(ds, norm, cfg, rt, steps * cfg.warmup_batch_size)
        ev = time_eval(model, ds, norm, cfg, rt, steps * cfg.eval_batch_size)
        mm = time_mixmatch(ds, norm, cfg, rt, steps)
        n, k = project_images or len(ds), project_classes or ds.num_classes
        _, split_s = project(cfg, n, k, len(ds) / decode_s, lga["images_per_s"], sup["images_per_s"],
                             mm["seconds_per_step"], ev["images_per_s"])
        probe = torch.zeros(1, 3, size, size, device=rt.device)
        model.eval()
        with torch.no_grad(), FlopCounterMode(display=False) as flops:
            model(probe)
        return {
            "size": size, "form": form, "arch": cfg.arch, "width": cfg.width, "device": str(rt.device),
            "precision": str(rt.amp_dtype or "fp32").replace("torch.", ""), "threads": torch.get_num_threads(),
            "images": len(ds), "decode_images_per_s": round(len(ds) / decode_s, 1),
            "lga_images_per_s": lga["images_per_s"], "supervised_images_per_s": sup["images_per_s"],
            "eval_images_per_s": ev["images_per_s"], "mixmatch_images_per_s": mm["images_per_s"],
            "projected_split_s": split_s, "projected_images": n, "projected_classes": k,
            "forward_gflops_per_image": round(flops.get_total_flops() / 1e9, 3),
            "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
            "dataset_tensor_mb": round(ds.images.numel() * ds.images.element_size() / 2**20, 1),
            "host_peak_mb": host_peak_mb(), "device_peak_mb": device_peak_mb(rt),
        }


def markdown(rows: list[dict]) -> str:
    head = ["working size", "form", "GFLOPs / image", "decode img/s", "LGA img/s", "supervised img/s",
            "MixMatch img/s", "eval img/s", "projected split s", "decoded data MB", "host peak MB", "device peak MB"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        cells = [r["size"], r["form"], r["forward_gflops_per_image"], r["decode_images_per_s"], r["lga_images_per_s"],
                 r["supervised_images_per_s"], r["mixmatch_images_per_s"], r["eval_images_per_s"], r["projected_split_s"],
                 r["dataset_tensor_mb"], r["host_peak_mb"],
                 r["device_peak_mb"] if r["device_peak_mb"] is not None else "-"]
        lines.append("| " + " | ".join(f"{c:,}" if isinstance(c, (int, float)) else str(c) for c in cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="ImageFolder tree (DATA/<class>/<image>)")
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="FIELD=VALUE", help="config override")
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128, 224])
    ap.add_argument("--forms", nargs="+", choices=FORMS, default=list(FORMS))
    ap.add_argument("--steps", type=int, default=4, help="timed batches per step (default 4)")
    ap.add_argument("--project-images", type=int, default=None, help="project the split for this many images (default: DATA's)")
    ap.add_argument("--project-classes", type=int, default=None, help="and this many classes (default: DATA's)")
    ap.add_argument("--json", dest="json_out", type=Path, default=None)
    ap.add_argument("--child", nargs=2, metavar=("SIZE", "FORM"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.data, args.preset, args.sets, int(args.child[0]), args.child[1], args.steps,
                               args.project_images, args.project_classes)))
        return []
    rows = []
    for size in args.sizes:
        for form in args.forms:
            cmd = [sys.executable, __file__, str(args.data), "--preset", args.preset, "--steps", str(args.steps),
                   "--child", str(size), form] + [a for s in args.sets for a in ("--set", s)]
            for flag, value in (("--project-images", args.project_images), ("--project-classes", args.project_classes)):
                if value:
                    cmd += [flag, str(value)]
            out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            r = rows[-1]
            print(f"{size} px {form}: supervised {r['supervised_images_per_s']} img/s, decode "
                  f"{r['decode_images_per_s']} img/s, host peak {r['host_peak_mb']} MB", file=sys.stderr, flush=True)
    first = rows[0]
    print(f"{args.data}: {first['images']:,} images; preset {args.preset} ({first['arch']} width {first['width']:g}), "
          f"{first['device']}, {first['precision']}, {first['threads']} threads, {args.steps} timed batches per step; "
          f"split projected for {first['projected_images']:,} images, {first['projected_classes']} classes\n")
    print(markdown(rows))
    if args.json_out:
        args.json_out.write_text(json.dumps({"data": str(args.data), "preset": args.preset, "sets": args.sets,
                                             "steps": args.steps, "rows": rows}, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
