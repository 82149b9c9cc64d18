"""Tests for the poisoned-benchmark builder, on a tiny generated ImageFolder (no real data needed)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bsd_audit.attacks import ATTACKS, Blended, WaNet, badnets, build_benchmark, checkerboard, sig

CLASSES = ["ant", "bee", "cat", "dog"]  # default target is the third: "cat"
PER_CLASS, TEST_PER_CLASS, RATE = 20, 5, 0.1
NUM_TRAIN = len(CLASSES) * PER_CLASS
NUM_POISONED = round(RATE * NUM_TRAIN)


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("src")
    rng = np.random.default_rng(123)
    for split, n in (("train", PER_CLASS + 3), ("test", TEST_PER_CLASS)):
        for c in CLASSES:
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                arr = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                im = Image.fromarray(arr)
                if i == 1:
                    im = im.convert("L")  # non-RGB inputs must come out as RGB
                elif i == 2:
                    im = im.convert("RGBA")
                im.save(root / split / c / f"img{i:03d}.png")
    return root


def _build(source: Path, out: Path, attack: str, **kw) -> dict:
    kw.setdefault("rate", RATE)
    return build_benchmark(source, out, attack, per_class=PER_CLASS, **kw)


@pytest.fixture(scope="module")
def built(source, tmp_path_factory) -> dict:
    """One build per attack, shared by the tests that only read it."""
    root = tmp_path_factory.mktemp("built")
    return {a: (root / a, _build(source, root / a, a)) for a in ATTACKS}


def _expected_trigger(attack: str, manifest: dict):
    p, seed = manifest["params"], manifest["seed"]
    if attack in ("badnets", "badnets_all2all"):
        return lambda x: badnets(x, patch_size=p["patch_size"])
    if attack == "blended":
        return Blended(alpha=p["alpha"], seed=seed)
    if attack == "wanet":
        return WaNet(k=p["k"], s=p["s"], seed=seed)
    return lambda x: sig(x, delta=p["delta"], f=p["f"])


@pytest.mark.parametrize("attack", ATTACKS)
def test_counts_and_layout(built, attack):
    out, m = built[attack]
    train_files = sorted(out.glob("train/*/*"))
    assert len(train_files) == m["num_train"] == NUM_TRAIN
    assert m["num_poisoned"] == len(m["poisoned"]) == NUM_POISONED
    assert m["classes"] == CLASSES and m["schema"] == 1 and m["attack"] == attack
    assert set(m["sources"]) == set(m["original_labels"]) == {p.relative_to(out / "train").as_posix() for p in train_files}
    assert len(m["cross"]) == (2 * NUM_POISONED if attack == "wanet" else 0)
    assert not set(m["cross"]) & set(m["poisoned"])
    assert m["num_test"] == len(list(out.glob("test/*/*"))) == len(CLASSES) * TEST_PER_CLASS
    n_triggered_classes = len(CLASSES) if attack == "badnets_all2all" else len(CLASSES) - 1
    assert m["test_triggered_count"] == len(list(out.glob("test_triggered/*/*"))) == n_triggered_classes * TEST_PER_CLASS
    assert json.loads((out / "manifest.json").read_text()) == m
    assert not list(out.parent.glob(".*"))  # no temp folders left behind
    # Every output image is an RGB PNG, clean ones included.
    for p in list(out.glob("*/*/*"))[:30]:
        with Image.open(p) as im:
            assert im.format == "PNG" and im.mode == "RGB"


@pytest.mark.parametrize("attack", ATTACKS)
def test_poisoned_carry_trigger_and_clean_are_exact(built, source, attack):
    out, m = built[attack]
    trigger = _expected_trigger(attack, m)
    poisoned, cross = set(m["poisoned"]), set(m["cross"])
    for rel, src in m["sources"].items():
        got, orig = _rgb(out / "train" / rel), _rgb(source / src)
        folder, true = rel.split("/")[0], m["original_labels"][rel]
        assert true == Path(src).parent.name
        if rel in poisoned:
            np.testing.assert_array_equal(got, trigger(orig))
            assert not np.array_equal(got, orig)
            if attack == "badnets_all2all":
                assert folder == CLASSES[(CLASSES.index(true) + 1) % len(CLASSES)]
            elif attack == "sig":
                assert folder == true == m["target"]
            else:
                assert folder == m["target"] != true
        elif rel in cross:
            assert folder == true  # noise-mode samples keep their label
            assert not np.array_equal(got, orig) and not np.array_equal(got, trigger(orig))
        else:
            assert folder == true
            np.testing.assert_array_equal(got, orig)
    # Triggered test images are the triggered clean twins, under their true class.
    for p in out.glob("test_triggered/*/*"):
        rel = p.relative_to(out / "test_triggered")
        np.testing.assert_array_equal(_rgb(p), trigger(_rgb(out / "test" / rel)))
        assert rel.parts[0] in m["target_mapping"]


def test_badnets_corner_is_checkerboard(built):
    out, m = built["badnets"]
    board = np.array([[255, 0, 255], [0, 255, 0], [255, 0, 255]], dtype=np.uint8)
    np.testing.assert_array_equal(checkerboard(3), board)
    for rel in m["poisoned"]:
        corner = _rgb(out / "train" / rel)[-3:, -3:, :]
        for ch in range(3):
            np.testing.assert_array_equal(corner[:, :, ch], board)
    assert m["params"] == {"patch_size": 3, "patch_share": 0.0} and m["target"] == "cat" and m["target_index"] == 2


def test_names_do_not_reveal_poison(built):
    for out, m in built.values():
        names = [rel.split("/")[1] for rel in m["sources"]]
        assert all(re.fullmatch(r"\d{6}\.png", n) for n in names)
        assert sorted(int(n[:6]) for n in names) == list(range(NUM_TRAIN))  # one permutation of the set


def test_all2all_mapping(built):
    out, m = built["badnets_all2all"]
    assert m["all2all"] is True and m["target"] is None and m["target_index"] is None
    assert m["target_mapping"] == {"ant": "bee", "bee": "cat", "cat": "dog", "dog": "ant"}
    assert {p.parent.name for p in out.glob("test_triggered/*/*")} == set(CLASSES)


def test_sig_is_clean_label(built):
    out, m = built["sig"]
    assert {m["original_labels"][r] for r in m["poisoned"]} == {"cat"}
    assert {r.split("/")[0] for r in m["poisoned"]} == {"cat"}
    assert sum(1 for r in m["sources"] if r.startswith("cat/")) == PER_CLASS  # no relabelling
    assert not list(out.glob("test_triggered/cat/*"))


def test_poison_label_target_folder_grows(built):
    out, m = built["blended"]
    assert len(list(out.glob("train/cat/*"))) == PER_CLASS + NUM_POISONED
    assert all(m["original_labels"][r] != "cat" for r in m["poisoned"])


def test_deterministic(source, tmp_path, built):
    for attack in ("wanet", "blended"):
        out1, m1 = built[attack]
        m2 = _build(source, tmp_path / attack, attack)
        assert m1 == m2
        files1 = sorted(p.relative_to(out1) for p in out1.glob("*/*/*"))
        assert files1 == sorted(p.relative_to(tmp_path / attack) for p in (tmp_path / attack).glob("*/*/*"))
        for rel in files1:
            np.testing.assert_array_equal(_rgb(out1 / rel), _rgb(tmp_path / attack / rel))
    other = _build(source, tmp_path / "seed1", "badnets", seed=1)
    assert set(other["poisoned"]) != set(built["badnets"][1]["poisoned"])


def test_params_override_and_target(source, tmp_path):
    m = _build(source, tmp_path / "o", "badnets", target="ant", params={"patch_size": 5})
    assert m["params"] == {"patch_size": 5, "patch_share": 0.0} and m["target"] == "ant" and m["target_index"] == 0
    for rel in m["poisoned"]:
        np.testing.assert_array_equal(_rgb(tmp_path / "o" / "train" / rel)[-5:, -5:, 0], checkerboard(5))
    with pytest.raises(ValueError, match="unknown parameter"):
        _build(source, tmp_path / "p", "badnets", params={"alpha": 0.5})


def test_bare_imagefolder_source(source, tmp_path):
    m = _build(source / "train", tmp_path / "bare", "badnets")
    assert m["num_train"] == NUM_TRAIN and m["num_test"] == 0 and m["test_triggered_count"] == 0
    assert sorted(p.name for p in (tmp_path / "bare").iterdir()) == ["manifest.json", "train"]
    assert all(src.startswith(tuple(CLASSES)) for src in m["sources"].values())


def test_refuses_non_empty_output(source, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        _build(source, out, "badnets")
    assert (out / "keep.txt").read_text() == "mine" and len(list(tmp_path.iterdir())) == 1
    m = _build(source, out, "badnets", overwrite=True)
    assert not (out / "keep.txt").exists() and len(list(out.glob("train/*/*"))) == m["num_train"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]  # no temp siblings left
    empty = tmp_path / "empty"
    empty.mkdir()
    _build(source, empty, "badnets")  # an existing empty folder is fine


@pytest.mark.parametrize("rate", [0, 1, -0.1, 1.5, float("nan"), 0.001])
def test_bad_rate(source, tmp_path, rate):
    with pytest.raises(ValueError, match="rate"):
        _build(source, tmp_path / "r", "badnets", rate=rate)
    assert not list(tmp_path.iterdir())


def test_bad_source_and_arguments(source, tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        _build(tmp_path / "missing", tmp_path / "o", "badnets")
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.new("RGB", (8, 8)).save(flat / "x.png")
    with pytest.raises(ValueError, match="class folders"):
        _build(flat, tmp_path / "o", "badnets")
    with pytest.raises(ValueError, match="not a class"):
        _build(source, tmp_path / "o", "badnets", target="zebra")
    with pytest.raises(ValueError, match="unknown attack"):
        _build(source, tmp_path / "o", "trojan")
    with pytest.raises(ValueError, match="leave target"):
        _build(source, tmp_path / "o", "badnets_all2all", target="cat")
    with pytest.raises(ValueError, match="only"):  # SIG cannot poison more than the target class holds
        _build(source, tmp_path / "o", "sig", rate=0.5)
    with pytest.raises(ValueError, match="outside the source"):
        _build(source, source / "train" / "out", "badnets")
    assert not (tmp_path / "o").exists()


def test_interrupted_build_leaves_nothing(source, tmp_path, monkeypatch):
    import bsd_audit.attacks.build as build_mod

    calls = []
    real_save = build_mod._save_png

    def flaky_save(arr, path):
        calls.append(path)
        if len(calls) == 10:
            raise KeyboardInterrupt
        real_save(arr, path)

    monkeypatch.setattr(build_mod, "_save_png", flaky_save)
    with pytest.raises(KeyboardInterrupt):
        _build(source, tmp_path / "out", "badnets")
    assert not list(tmp_path.iterdir())
