"""benchmarks/calibrate_verdict.py builds the clean sets it promises: the counts per class (an
imbalanced set gets its own count per class), grayscale images where asked, and exact duplicates of
the first class's first images, without touching the source."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from conftest import load_benchmark


def _source(root: Path, classes=("ant", "bee", "cat"), per_class=12) -> Path:
    rng = np.random.default_rng(0)
    for name in classes:
        (root / "train" / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / "train" / name / f"{i:03d}.png")
    return root


def test_imbalanced_gray_and_duplicated_sets_are_built_as_specified(tmp_path):
    cal = load_benchmark("calibrate_verdict")
    src = _source(tmp_path / "src")
    before = sorted(p.read_bytes() for p in (src / "train").rglob("*.png"))

    spec = cal.CleanSet(("bee", "ant", "cat"), (3, 7, 5), offset=2, gray=True, duplicates=8)
    out = tmp_path / "set"
    cal.make_clean_subset(src, out, spec)

    counts = {d.name: len(list(d.iterdir())) for d in out.iterdir()}
    assert counts == {"bee": 3 + 8, "ant": 7, "cat": 5}  # duplicates go to the first class only
    # the images come from the offset on, by file name
    assert sorted(p.name for p in (out / "ant").iterdir()) == [f"{i:03d}.png" for i in range(2, 9)]
    for p in out.rglob("*.png"):
        a = np.asarray(Image.open(p).convert("RGB"))
        assert (a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all(), p
    copies = sorted((out / "bee").glob("dup*"))
    assert len(copies) == 8
    for c in copies:  # each is a byte-identical copy of one of the first six kept images
        original = out / "bee" / c.name.split("-", 1)[1]
        assert c.read_bytes() == original.read_bytes()
    assert len({c.name.split("-", 1)[1] for c in copies}) == 3  # only 3 kept images to copy from here

    assert sorted(p.read_bytes() for p in (src / "train").rglob("*.png")) == before
    assert not list(tmp_path.glob("*.tmp"))


def test_a_colour_set_keeps_the_source_bytes(tmp_path):
    cal = load_benchmark("calibrate_verdict")
    src = _source(tmp_path / "src")
    out = tmp_path / "set"
    cal.make_clean_subset(src, out, cal.CleanSet(None, 4, offset=0))
    for name in ("ant", "bee", "cat"):
        got = sorted((out / name).iterdir())
        assert [p.name for p in got] == [f"{i:03d}.png" for i in range(4)]
        assert all(p.read_bytes() == (src / "train" / name / p.name).read_bytes() for p in got)


def test_every_poisoned_benchmark_and_variant_is_built_as_named(tmp_path):
    """Each entry of POISONED and VARIANTS builds: its target class (bird unless named), its rate and its
    trigger parameters are the ones the manifest records."""
    cal = load_benchmark("calibrate_verdict")
    cifar = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    src = _source(tmp_path / "src", classes=cifar, per_class=20)
    assert set(cal.POISONED) & set(cal.VARIANTS) == set()  # a variant never reuses a calibration set's name
    for name, spec in {**cal.POISONED, **cal.VARIANTS}.items():
        bench = tmp_path / name
        cal.build_poisoned(src, bench, spec, per_class=20)
        m = json.loads((bench / "manifest.json").read_text())
        assert m["attack"] == spec.attack and m["target"] == (spec.target or "bird"), name
        assert m["num_poisoned"] == round(spec.rate * 200), name
        assert all(m["params"][k] == v for k, v in spec.params.items()), name


def test_baseline_asr_trains_once_and_reads_the_backdoor(tmp_path, monkeypatch):
    """--asr's baseline: trained on the benchmark as labelled, evaluated on its triggered test set,
    and reused (not retrained) when the calibration runs again."""
    from conftest import TINY_OVERRIDES, make_tiny_poisoned, make_tiny_test_sets
    from bsd_audit.config import resolve_config

    cal = load_benchmark("calibrate_verdict")
    bench = tmp_path / "bench"
    make_tiny_poisoned(bench / "train", n_poison=10)
    (bench / "manifest.json").write_text((bench / "train_manifest.json").read_text())
    make_tiny_test_sets(bench)
    cfg = resolve_config("cpu", {**TINY_OVERRIDES, "purify_epochs": 12})
    out = tmp_path / "base.h5"

    asr = cal.baseline_asr(bench, out, cfg)
    assert out.exists()
    # the ASR is this model's on the benchmark's triggered test set, read with the manifest's target
    assert asr == cal.evaluate(out, bench / "test", bench / "test_triggered", truth=bench / "manifest.json").asr
    # trained on the benchmark as labelled: it fits the training set, poisoned labels included
    assert cal.evaluate(out, bench / "train").ca >= 90.0

    def no_training(*a, **k):
        raise AssertionError("the baseline was trained again")
    monkeypatch.setattr(cal, "train_clean", no_training)
    assert cal.baseline_asr(bench, out, cfg) == asr


def test_misses_are_split_by_whether_the_attack_took_hold():
    cal = load_benchmark("calibrate_verdict")
    rows = [{"verdict": "poisoned", "baseline_asr": 98.0}, {"verdict": "clean", "baseline_asr": 97.0},
            {"verdict": "clean", "baseline_asr": 9.4}, {"verdict": "inconclusive", "baseline_asr": 44.1},
            {"verdict": "poisoned", "baseline_asr": 12.0}, {"verdict": "clean"}]  # the last: --asr not run
    assert cal.misses_by_hold(rows) == {"held": 2, "held_missed": 1, "weak": 3, "weak_missed": 2}


def test_the_matrix_holds_every_attack_rate_and_domain_with_drawn_targets():
    cal = load_benchmark("calibrate_verdict")
    rows = cal.matrix_rows()
    cifar = [r for r, (_, src) in rows.items() if src == "cifar10"]
    assert len(cifar) == 5 * 3 and len([r for r, (_, s) in rows.items() if s == "cifar10-10k"]) == 5
    assert {(spec.attack, spec.rate) for spec, src in rows.values() if src == "clothing"} == {
        ("badnets", 0.05), ("blended", 0.05), ("sig", 0.05)}
    targets = {spec.target for spec, src in rows.values() if src.startswith("cifar10")}
    assert len(targets) >= 4 and targets <= set(cal.CIFAR10_CLASSES)  # drawn per row, not one favourite
    assert cal.matrix_rows() == rows  # the draw is seeded by the row's name


def test_evidence_of_a_run_judges_the_same_offline(tiny_split, tmp_path):
    from bsd_audit.artifacts.target import read_evidence
    from bsd_audit.method.verdict import Evidence, attack_verdict

    cal = load_benchmark("calibrate_verdict")
    saved = cal.save_evidence(tmp_path, "tiny", 0, tiny_split["split"], ["ant", "bee", "cat"], None, None, "split")
    ev = load_benchmark("judge_evidence").load(saved)
    again = attack_verdict(Evidence(ev["labels"].astype(np.int64), int(ev["target_used"]), ev["fit_rank"].astype(np.float64),
                                    float(ev["vote_share"]), True, float(ev["loss_gap"]),
                                    ev["indicator"].astype(np.float64)))
    stored = attack_verdict(read_evidence(tiny_split["split"]))
    assert again.verdict == stored.verdict and abs(again.score - stored.score) < 1e-4
    assert ev["clean"].dtype == bool and len(ev["clean"]) == len(ev["labels"]) and saved.stat().st_size < 200_000
    # judge_evidence.py reads it back with the same verdict, and scores every class as the candidate
    row, = load_benchmark("judge_evidence").main([str(tmp_path)])
    assert row["verdict"] == stored.verdict and row["score"] == round(stored.score, 2)
    assert row["lga"] in ("ant", "bee", "cat") and row["classes"] == 3
