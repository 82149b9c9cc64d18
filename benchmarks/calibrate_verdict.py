"""Calibrate and check the attack-present verdict and the suspicious list (issue 8).

Runs the audit on clean datasets (class subsets and sizes of a clean ImageFolder, and the bundled
sample with its poison undone) and on poisoned benchmarks, then reports for each: the verdict, its
two lines of evidence (the target's tail score; the held-out check's lowest class z and that class),
the class the list is drawn from and, where ground truth exists, the true target, the suspicious
list's precision and recall and the ranking's precision at 90 % recall. The verdict needs only the
altruistic warm-up and the held-out check, so by default only `detect-target` runs; --stage split
runs the whole split, whose suspicious list also reads the main model's indicator I (about 4 minutes
per dataset). Finished artifacts in --work are reused, so thresholds can be re-examined without
re-training:

    python benchmarks/calibrate_verdict.py ../shared/data/cifar10 --work runs/calibrate

About 2-3 minutes per dataset on a 2-core CPU with the cpu preset, its three pooled warm-ups and the
held-out check (14 datasets by default, 22 with --variants; --matrix for issue 22's matrix). The clean sets differ in classes, size, balance
and colour, and one holds duplicated images, as scraped data does. --seeds repeats every run under
other seeds: the verdict's false-alarm rate is a property of the training's randomness as much as of
the data. --variants adds held-out attacks (other target classes,
lower rates, weaker or larger triggers) that nothing was tuned on. --asr also trains the no-defence
baseline on each poisoned benchmark (about 75 s each) and reports its attack success rate, so that a
miss on a backdoor that took hold is told apart from a miss on poison a model trained on the data never
obeys (at 2,500 images, BadNets 1 % and WaNet 5 %).
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from bsd_audit.api import detect_target, evaluate, split, train_clean
from bsd_audit.artifacts.h5 import config_of, open_artifact, read_samples
from bsd_audit.artifacts.split import read_split
from bsd_audit.artifacts.target import read_evidence, read_target_of
from bsd_audit.attacks import build_benchmark
from bsd_audit.config import parse_overrides, resolve_config
from bsd_audit.metrics import precision_at_recall
from tables import markdown_table  # benchmarks/tables.py: the script's own folder is on sys.path
from bsd_audit.method.verdict import attack_verdict


@dataclass(frozen=True)
class CleanSet:
    classes: tuple[str, ...] | None  # None = every class of the source
    per_class: int | tuple[int, ...]  # images per class, or one count per class in order (imbalanced)
    offset: int  # the first image (by file name) taken from each class
    gray: bool = False  # stored as grayscale (converted back to 3 channels)
    duplicates: int = 0  # extra copies of the first class's first 6 images (scraped data repeats itself)


CLEAN = {
    "clean-c10-200": CleanSet(None, 200, 250),
    "clean-c5-400": CleanSet(("airplane", "cat", "dog", "ship", "truck"), 400, 500),
    "clean-c3-500": CleanSet(("bird", "frog", "horse"), 500, 1000),
    "clean-c6-300": CleanSet(("automobile", "deer", "dog", "frog", "ship", "truck"), 300, 1500),
    "clean-c7-200": CleanSet(("airplane", "automobile", "bird", "cat", "deer", "dog", "frog"), 200, 4200),
    "clean-imbalanced": CleanSet(None, (330, 400, 60, 200, 110, 150, 80, 40, 500, 260), 3000),
    "clean-gray": CleanSet(None, 100, 3600, gray=True),
    "clean-duplicates": CleanSet(("cat", "airplane", "automobile", "bird", "deer", "dog", "frog", "horse", "ship",
                                  "truck"), 150, 4000, duplicates=30),
}


TOOK_HOLD_ASR = 50.0  # percent: a baseline that obeys the trigger at least half the time has a backdoor


class Poisoned(NamedTuple):
    attack: str
    rate: float
    params: dict
    target: str | None = None  # None: the builder's default, the third class (bird on CIFAR-10)


POISONED = {
    "badnets-5": Poisoned("badnets", 0.05, {}),
    "blended-5": Poisoned("blended", 0.05, {}),
    "wanet-5": Poisoned("wanet", 0.05, {}),
    "sig-5": Poisoned("sig", 0.05, {}),
    "badnets-1": Poisoned("badnets", 0.01, {}),
}
# Held out from the calibration (--variants): the same attacks aimed at other classes (an easy target's
# own tail is long, a hard one's short), at lower rates and with weaker or larger triggers. Nothing was
# tuned on them; they say whether the thresholds carry over to attacks the calibration never saw.
VARIANTS = {
    "badnets-5-automobile": Poisoned("badnets", 0.05, {}, "automobile"),
    "badnets-5-cat": Poisoned("badnets", 0.05, {}, "cat"),
    "badnets-3": Poisoned("badnets", 0.03, {}),
    "badnets-2-patch5": Poisoned("badnets", 0.02, {"patch_size": 5}),
    "blended-5-alpha10": Poisoned("blended", 0.05, {"alpha": 0.1}),
    "blended-3": Poisoned("blended", 0.03, {}),
    "blended-5-truck": Poisoned("blended", 0.05, {}, "truck"),
    "sig-5-ship": Poisoned("sig", 0.05, {}, "ship"),
}


# The calibration matrix (--matrix): every attack the verdict is asked to catch, at the rates it must
# catch them, each row's target drawn at random (seeded by the row's name) so that no class is favoured.
# Rows named *-10k use 1,000 images per class (10,000); clothing-* rows poison the full-resolution
# photos of --clothing. Whether a row counts is decided by its no-defence ASR (--asr), never assumed.
MATRIX_ATTACKS = {"badnets3": ("badnets", {"patch_size": 3}), "badnets5": ("badnets", {"patch_size": 5}),
                  "blended10": ("blended", {"alpha": 0.1}), "blended20": ("blended", {"alpha": 0.2}),
                  "sig": ("sig", {})}
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CLOTHING_CLASSES = ("dress", "hat", "longsleeve", "outwear", "pants", "shirt", "shoes", "shorts", "skirt", "t-shirt")


def _drawn_target(name: str, classes: tuple[str, ...]) -> str:
    return classes[int(np.random.default_rng(list(name.encode())).integers(len(classes)))]


def matrix_rows() -> dict[str, tuple[Poisoned, str]]:
    """name -> (attack, source): "cifar10" (2,500 images, or 10,000 for *-10k) or "clothing"."""
    rows = {}
    for key, (attack, params) in MATRIX_ATTACKS.items():
        for pct in (1, 3, 5):
            name = f"m-{key}-{pct}"
            rows[name] = (Poisoned(attack, pct / 100, params, _drawn_target(name, CIFAR10_CLASSES)), "cifar10")
        name = f"m-{key}-1-10k"
        rows[name] = (Poisoned(attack, 0.01, params, _drawn_target(name, CIFAR10_CLASSES)), "cifar10-10k")
    for key in ("badnets3", "blended10", "sig"):
        attack, params = MATRIX_ATTACKS[key]
        name = f"m-clothing-{key}-5"
        rows[name] = (Poisoned(attack, 0.05, params, _drawn_target(name, CLOTHING_CLASSES)), "clothing")
    # the photo-scale BadNets of issue 21: a patch 6 % of the short side (the paper's ImageNet patch is 14 %)
    name = "m-clothing-badnets6pct-5"
    rows[name] = (Poisoned("badnets", 0.05, {"patch_share": 0.06}, _drawn_target(name, CLOTHING_CLASSES)), "clothing")
    return rows


# Clean shapes the first calibration did not cover (--matrix): another domain, twenty classes from two
# domains side by side, a 100:1 imbalance, and a few hundred images.
def make_mixed_domains(cifar: Path, clothing: Path, out: Path, per_class: int = 120) -> None:
    """CIFAR-10's ten classes beside clothing's ten: twenty classes, two kinds of image."""
    if out.exists():
        return
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for source, names in ((cifar / "train", CIFAR10_CLASSES), (clothing / "train", CLOTHING_CLASSES)):
        for name in names:
            (tmp / name).mkdir(parents=True)
            for f in sorted((source / name).iterdir())[:per_class]:
                shutil.copy2(f, tmp / name / f.name)
    tmp.rename(out)


MATRIX_CLEAN = {
    "clean-imbalanced-100": CleanSet(None, (500, 320, 200, 130, 80, 50, 30, 20, 10, 5), 2000),
    "clean-few-hundred": CleanSet(("cat", "dog", "ship", "truck"), 60, 2500),
}


def _listed(values: np.ndarray) -> list:
    """An array as a JSON list: floats to 6 significant digits, NaN as null."""
    if values.dtype == bool or np.issubdtype(values.dtype, np.integer):
        return values.tolist()
    return [None if not np.isfinite(v) else float(f"{v:.6g}") for v in values.astype(np.float64)]


def save_evidence(folder: Path, name: str, seed: int, art: Path, classes: list[str], truth, baseline: float | None,
                  stage: str) -> Path:
    """One run's evidence as a small gzipped JSON file (plain data: reading it runs no code), enough to
    judge it again offline with another verdict rule: labels, warm-up fit ranks, the split's indicator,
    scores, pools and main-model view (split stage), both target estimates, the votes, the ground truth
    and the no-defence ASR. benchmarks/judge_evidence.py reads it."""
    ev = read_evidence(art)
    arrays = {"labels": ev.labels, "fit_rank": ev.fit_rank, "holdout_prob": ev.holdout_prob,
              "holdout_called": ev.holdout_called, "holdout_called_prob": ev.holdout_called_prob, "copy_of": ev.copy_of,
              "trigger_match": ev.trigger_match,
              "indicator": ev.indicator if ev.indicator is not None else np.full(len(ev.labels), np.nan),
              "truth": np.zeros(len(ev.labels), bool) if truth is None else np.asarray(truth, bool)}
    if stage == "split":
        sp = read_split(art)
        arrays.update(clean=sp.clean, als=sp.scores["als"], oss=sp.scores["oss"])
        if sp.main_pred is not None:
            arrays.update(main_pred=sp.main_pred, main_label_prob=sp.main_label_prob)
    t = read_target_of(art)
    with open_artifact(art) as f:
        image_size = int(config_of(f)["image_size"])  # the working size the run chose
    doc = {"schema": 1, "dataset": name, "seed": seed, "stage": stage, "classes": list(classes), "image_size": image_size,
           "target_used": int(ev.target), "lga_target": int(t["lga_target"]),
           "second_likely_target": int(t["second_likely_target"]), "votes": [int(v) for v in t["votes"]],
           "vote_share": float(ev.vote_share), "loss_gap": float(ev.loss_gap), "holdout_share": float(ev.holdout_share),
           "holdout_variety": _listed(np.asarray(ev.holdout_variety)),  # per class
           "coherence_z": _listed(np.asarray(ev.coherence_z)), "coherence_likeness": _listed(np.asarray(ev.coherence_likeness)),
           "coherence_group": [int(g) for g in np.asarray(ev.coherence_group)],
           "trigger_class": int(ev.trigger_class),
           "poisoned": truth is not None,
           "baseline_asr": baseline, "arrays": {k: _listed(np.asarray(v)) for k, v in arrays.items()}}
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{name}-s{seed}-{stage}.json.gz"
    with gzip.open(out, "wt", encoding="utf-8") as fh:
        json.dump(doc, fh, separators=(",", ":"))
    return out


def build_poisoned(source: Path, bench: Path, spec: Poisoned, per_class: int) -> None:
    """One poisoned benchmark of POISONED or VARIANTS (benchmark seed 2, 10 test images per class)."""
    if (bench / "manifest.json").exists():
        return
    build_benchmark(source, bench, spec.attack, rate=spec.rate, target=spec.target, per_class=per_class,
                    test_per_class=10, seed=2, params=spec.params, overwrite=True)


def baseline_asr(bench: Path, out: Path, cfg) -> float | None:
    """ASR (percent) of the no-defence model trained on ``bench`` as labelled: does the attack take hold?
    Trained without flips, as benchmarks/purify_table.py does: a flip moves a corner trigger to the
    other corner, and at 2,500 images the baseline then never learns even BadNets 5 %."""
    if not out.exists():
        train_clean(bench / "train", out, cfg.model_copy(update={"aug_flip": False}), None, "baseline")
    return evaluate(out, bench / "test", bench / "test_triggered", truth=bench / "manifest.json").asr


def misses_by_hold(rows: list[dict]) -> dict:
    """Poisoned runs with a measured baseline ASR, split by whether the attack took hold, and the
    verdict's misses in each group."""
    measured = [r for r in rows if r.get("baseline_asr") is not None]
    held = [r["verdict"] != "poisoned" for r in measured if r["baseline_asr"] >= TOOK_HOLD_ASR]
    weak = [r["verdict"] != "poisoned" for r in measured if r["baseline_asr"] < TOOK_HOLD_ASR]
    return {"held": len(held), "held_missed": sum(held), "weak": len(weak), "weak_missed": sum(weak)}


def make_clean_subset(source: Path, out: Path, spec: CleanSet) -> None:
    """Copy a clean class subset (by file name, from ``spec.offset``) into an ImageFolder."""
    if out.exists():
        return
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    train = source / "train"
    names = spec.classes or sorted(p.name for p in train.iterdir() if p.is_dir())
    counts = spec.per_class if isinstance(spec.per_class, tuple) else (spec.per_class,) * len(names)
    for i, (name, n) in enumerate(zip(names, counts, strict=True)):
        files = sorted((train / name).iterdir())[spec.offset:spec.offset + n]
        (tmp / name).mkdir(parents=True)
        for f in files:
            if spec.gray:
                Image.open(f).convert("L").convert("RGB").save(tmp / name / f.name, quality=95)
            else:
                shutil.copy2(f, tmp / name / f.name)
        for k in range(spec.duplicates if i == 0 and files else 0):  # copies of the image as stored
            kept = tmp / name / files[k % min(6, len(files))].name
            shutil.copy2(kept, tmp / name / f"dup{k}-{kept.name}")
    tmp.rename(out)


def unpoison_sample(sample: Path, out: Path) -> None:
    """The bundled sample with every poisoned image replaced by its clean source under its own label."""
    if out.exists():
        return
    manifest = json.loads((sample / "manifest.json").read_text())
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for rel, label in manifest["original_labels"].items():
        src = sample / "train" / rel
        (tmp / label).mkdir(parents=True, exist_ok=True)
        if rel in set(manifest["poisoned"]):
            src = Path(manifest["source"]) / manifest["sources"][rel]
        shutil.copy2(src, tmp / label / Path(rel).name)
    tmp.rename(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", type=Path, help="clean ImageFolder with train/ (CIFAR-10 layout)")
    ap.add_argument("--sample", type=Path, default=Path("sample_data"))
    ap.add_argument("--work", type=Path, default=Path("runs/calibrate"))
    ap.add_argument("--only", nargs="*", help="dataset names to run (default: all)")
    ap.add_argument("--per-class", type=int, default=250, help="images per class of the poisoned benchmarks")
    ap.add_argument("--stage", choices=("detect", "split"), default="detect")
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--seeds", type=int, nargs="*", help="training seeds (default: the preset's); each runs every dataset")
    ap.add_argument("--variants", action="store_true",
                    help="also run the held-out attack variants (other targets, rates and trigger strengths)")
    ap.add_argument("--matrix", action="store_true",
                    help="run the calibration matrix instead (MATRIX_ATTACKS at 1/3/5 %% on 2,500 CIFAR-10 images and "
                         "1 %% on 10,000, the clothing rows, and the clean shapes of CLEAN and MATRIX_CLEAN)")
    ap.add_argument("--clothing", type=Path, default=Path("../shared/data/clothing"),
                    help="full-resolution clothing photos (train/, test/) for the matrix's other-domain rows")
    ap.add_argument("--evidence", type=Path, help="also save each run's evidence as a small .json.gz here, to judge "
                    "it again offline with another verdict rule")
    ap.add_argument("--asr", action="store_true",
                    help="also train the no-defence baseline on each poisoned benchmark and report its ASR")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    cfg = resolve_config(args.preset, parse_overrides(args.sets))
    jobs = []  # (name, data root, manifest or None)
    for name, spec in CLEAN.items():
        jobs.append((name, args.work / name, None, lambda o=args.work / name, sp=spec: make_clean_subset(args.source, o, sp)))
    if (args.sample / "manifest.json").exists():
        jobs.append(("clean-sample", args.work / "clean-sample", None,
                     lambda o=args.work / "clean-sample": unpoison_sample(args.sample, o)))
    if args.matrix:
        for name, spec in MATRIX_CLEAN.items():
            jobs.append((name, args.work / name, None,
                         lambda o=args.work / name, sp=spec: make_clean_subset(args.source, o, sp)))
        if (args.clothing / "train").is_dir():
            jobs.append(("clean-clothing", args.clothing / "train", None, lambda: None))
            jobs.append(("clean-c20-two-domains", args.work / "clean-c20-two-domains", None,
                         lambda o=args.work / "clean-c20-two-domains": make_mixed_domains(args.source, args.clothing, o)))
        for name, (spec, source) in matrix_rows().items():
            if source == "clothing" and not (args.clothing / "train").is_dir():
                continue
            bench = args.work / name
            src, per_class = {"cifar10": (args.source, args.per_class), "cifar10-10k": (args.source, 1000),
                              "clothing": (args.clothing, None)}[source]
            jobs.append((name, bench / "train", bench / "manifest.json",
                         lambda b=bench, sp=spec, s=src, n=per_class: build_poisoned(s, b, sp, n)))
    for name, spec in ({} if args.matrix else {**POISONED, **(VARIANTS if args.variants else {})}).items():
        bench = args.work / name
        jobs.append((name, bench / "train", bench / "manifest.json",
                     lambda b=bench, sp=spec: build_poisoned(args.source, b, sp, args.per_class)))
    rows = []
    seeds = args.seeds or [cfg.seed]
    runs = [(job, seed) for job in jobs for seed in seeds if not args.only or job[0] in args.only]
    for (name, data, manifest, prepare), seed in runs:
        prepare()
        # the preset's seed keeps the plain name, so artifacts from before --seeds are reused
        art = args.work / (f"{name}-{args.stage}.h5" if seed == cfg.seed else f"{name}-s{seed}-{args.stage}.h5")
        wall = None
        if not art.exists():
            t0 = time.perf_counter()
            run_cfg = cfg.model_copy(update={"seed": seed})
            if args.stage == "split":
                split(data, art, run_cfg, truth_manifest=manifest)
            else:
                detect_target(data, art, run_cfg)
            wall = round(time.perf_counter() - t0, 1)
        ev = read_evidence(art)
        classes, paths = read_samples(art)
        truth, true_target = None, "-"
        if manifest is not None:
            doc = json.loads(Path(manifest).read_text())
            poisoned = set(doc["poisoned"])
            truth = np.array([p in poisoned for p in paths])
            true_target = doc.get("target", "-")
        ev.classes = classes
        v = attack_verdict(ev)
        row = {"dataset": name, "seed": seed, "poisoned": manifest is not None, "true_target": true_target,
               "target": classes[ev.target], "verdict": v.verdict, "score": round(v.score, 3), "holdout_z": v.inputs["holdout_z"],
               "holdout_class": v.name(v.inputs["holdout_class"]), "evidence": "+".join(v.evidence) or "-",
               "suspected": v.name(v.suspected),
               **{k: v.inputs[k] for k in ("vote_share", "target_lower_spread", "honest_lower_spread")},
               "widest": classes[v.inputs["widest_class"]]}
        if truth is not None:
            flagged = v.suspicious
            tp = int((flagged & truth).sum())
            row["susp_n"] = int(flagged.sum())
            row["susp_precision"] = round(tp / max(int(flagged.sum()), 1), 3)
            row["susp_recall"] = round(tp / max(int(truth.sum()), 1), 3)
            p90 = precision_at_recall(v.suspicion, truth, 0.9)  # the ranking, whatever the list's cut
            row["rank_p_at_r90"] = None if p90 is None else round(p90, 3)
            row["list_uses_I"] = v.inputs["list_uses_indicator"]
            if args.asr:  # the baseline's seed is the run's: each seed's run asks whether its own training obeys
                base = art.with_name(art.name.replace(f"-{args.stage}.h5", "-baseline.h5"))
                row["baseline_asr"] = baseline_asr(Path(manifest).parent, base, cfg.model_copy(update={"seed": seed}))
        if wall is not None:
            row[f"{args.stage}_s"] = wall
        if args.evidence is not None:
            save_evidence(args.evidence, name, seed, art, classes, truth, row.get("baseline_asr"), args.stage)
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(markdown_table(rows))
    clean_rows = [r for r in rows if not r["poisoned"]]
    bad_rows = [r for r in rows if r["poisoned"]]
    print(f"\nfalse alarms: {sum(r['verdict'] != 'clean' for r in clean_rows)} of {len(clean_rows)} clean runs "
          f"({sum(r['verdict'] == 'poisoned' for r in clean_rows)} poisoned); "
          f"misses: {sum(r['verdict'] != 'poisoned' for r in bad_rows)} of {len(bad_rows)} poisoned runs")
    if any(r.get("baseline_asr") is not None for r in bad_rows):
        m = misses_by_hold(bad_rows)
        print(f"attacks that took hold (baseline ASR >= {TOOK_HOLD_ASR:g} %): missed {m['held_missed']} of "
              f"{m['held']} runs; attacks that did not: missed {m['weak_missed']} of {m['weak']}")
    if clean_rows and bad_rows:
        print(f"largest clean score {max(r['score'] for r in clean_rows):.2f}; "
              f"smallest poisoned score {min(r['score'] for r in bad_rows):.2f}")


if __name__ == "__main__":
    main()
