"""What a `split` would cost on a dataset too large to try first (ImageNet scale), from measured figures.

Takes the per-image rates that benchmarks/speed.py measured on one machine (its --json output) and
projects every stage of `split` (speed.py's ``project``: seconds per epoch x epochs) to another
number of images, classes, working resolution and number of data-parallel ranks:

    PYTHONPATH=. python benchmarks/speed.py DATA --preset fast --json speed.json       # measure
    PYTHONPATH=. python benchmarks/project_cost.py speed.json --images 1281167 --classes 1000 \\
        --image-size 64 --ranks 8                                                        # project

Assumptions, printed with the result: the model and its settings are the measured ones (the rates
belong to that architecture and width, so changing them is refused); a convolution's cost grows with
the pixel count, so per-image time is scaled by (S / S_measured)^2; N ranks run N times as fast
times --efficiency (1.0 = ideal; gradient all-reduce and stragglers cost some); decode runs on
every core of one host, at the measured rate per core times --decode-cores. It is a projection,
not a measurement: run speed.py on a sample of the real data at the real resolution to check it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed import project, table  # noqa: E402

from bsd_audit.config import Config, lga_epochs, parse_overrides, resolve_config  # noqa: E402

RATE_FIELDS = ("arch", "width", "precision", "channels_last", "compile")


def projection(speed: dict, images: int, classes: int, image_size: int, ranks: int, efficiency: float,
               decode_cores: int | None, overrides: dict) -> dict:
    for k in overrides:
        if k in ("arch", "width", "image_size"):
            raise SystemExit(f"--set {k}: the measured rates belong to the measured model; measure again instead")
    # the measured run's config, then --set, typed and checked as the commands do
    measured = {k: v for k, v in speed["config"].items() if k in Config.model_fields and k != "preset"}
    cfg = resolve_config(speed["config"].get("preset", "paper"), {**measured, **overrides, "image_size": image_size})
    scale = (image_size / speed["image_size"]) ** 2  # per-image cost ~ pixels
    speedup = ranks * efficiency
    steps = speed["steps"]
    rate = lambda name: steps[name]["images_per_s"] / scale * speedup  # noqa: E731
    cores_measured = speed["threads"]["cpu_count"] or 1
    decode_rate = speed["decode"]["images_per_s"] / cores_measured * (decode_cores or cores_measured) / scale
    stages, total = project(cfg, images, classes, decode_rate, rate("lga"), rate("supervised"),
                            steps["mixmatch"]["seconds_per_step"] * scale / speedup, rate("eval"))
    decoded_gb = images * 3 * image_size ** 2 / 1e9
    return {
        "measured_on": {"device": speed["device"], "data": speed["data"], "num_images": speed["num_images"],
                        "image_size": speed["image_size"], **{k: speed[k] for k in RATE_FIELDS},
                        "images_per_s": {k: v["images_per_s"] for k, v in steps.items()}},
        "projected_for": {"images": images, "classes": classes, "image_size": image_size, "ranks": ranks,
                          "efficiency": efficiency, "decode_cores": decode_cores or cores_measured,
                          "epochs": {"altruistic_warmup": lga_epochs(cfg, images), "T1": cfg.T1, "T2": cfg.T2,
                                     "T3": cfg.T3, "mixmatch_iterations": cfg.mixmatch_iterations}},
        "decoded_cache_gb": round(decoded_gb, 2),
        "stages": stages, "total_s": total, "total_h": round(total / 3600, 2),
        "assumptions": ["rates of the measured model and settings", f"per-image time x {scale:.3g} (pixels)",
                        f"{ranks} rank(s) at efficiency {efficiency}", "checkpoint writes and the verdict left out"],
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("speed_json", type=Path, help="output of benchmarks/speed.py --json")
    ap.add_argument("--images", type=int, required=True)
    ap.add_argument("--classes", type=int, required=True)
    ap.add_argument("--image-size", type=int, default=None, help="working resolution (default: the measured one)")
    ap.add_argument("--ranks", type=int, default=1, help="data-parallel ranks (GPUs) under torchrun")
    ap.add_argument("--efficiency", type=float, default=1.0, help="share of linear speed-up the ranks reach")
    ap.add_argument("--decode-cores", type=int, default=None, help="cores decoding (default: the measured machine's)")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="epoch settings, e.g. --set T3=60")
    ap.add_argument("--json", dest="json_out", type=Path, default=None)
    a = ap.parse_args(argv)
    speed = json.loads(a.speed_json.read_text())
    res = projection(speed, a.images, a.classes, a.image_size or speed["image_size"], a.ranks, a.efficiency,
                     a.decode_cores, parse_overrides(a.sets))
    m, p = res["measured_on"], res["projected_for"]
    print(f"measured: {m['device']}, {m['arch']} width {m['width']:g}, {m['image_size']}px, images/s "
          + ", ".join(f"{k} {v:,.0f}" for k, v in m["images_per_s"].items()))
    print(f"projected: {p['images']:,} images, {p['classes']} classes, {p['image_size']}px, {p['ranks']} rank(s); "
          f"decoded cache {res['decoded_cache_gb']:,} GB; assumptions: " + "; ".join(res["assumptions"]))
    print(table("split, projected", ["stage", "count", "s each", "s"],
                [[s["stage"], s["count"], s["seconds_each"], s["seconds"]] for s in res["stages"]]))
    print(f"\ntotal: {res['total_s']:,.0f} s = {res['total_h']:,.2f} h")
    if a.json_out:
        a.json_out.write_text(json.dumps(res, indent=2) + "\n")
    return res


if __name__ == "__main__":
    main()
