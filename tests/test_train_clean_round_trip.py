"""`train-clean` writes a weights file that loads back into a module giving the same outputs, with the
metadata a user needs (architecture, classes, normalisation, config, fingerprint); the baseline
trains on every sample as labelled."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from bsd_audit.cli import app
from bsd_audit.config import resolve_config
from bsd_audit.data import Normalizer, load_imagefolder
from bsd_audit.training.loops import predict
from bsd_audit.method.purify import train_model
from bsd_audit.training.runtime import make_runtime
from bsd_audit.artifacts.model import load_model, write_model
from bsd_audit.artifacts.split import read_split
from conftest import TINY_OVERRIDES

runner = CliRunner()
SETS = [a for k, v in {**TINY_OVERRIDES, "purify_epochs": 2}.items() for a in ("--set", f"{k}={v}")]


@pytest.mark.parametrize("arch", ["fastnet", "resnet18", "mobilenet_v2"])
def test_weights_round_trip_give_identical_outputs(tiny_split, tmp_path, arch):
    # fp32 in training too: a loaded model predicts in fp32, and bf16 autocast would differ by its rounding
    cfg = resolve_config("cpu", {**TINY_OVERRIDES, "purify_epochs": 1, "arch": arch, "precision": "fp32",
                                 "width": {"fastnet": 8, "resnet18": 4, "mobilenet_v2": 0.25}[arch]})
    rt = make_runtime(cfg)
    ds = load_imagefolder(tiny_split["data"], cfg.image_size, rt.device)
    mean, std = ds.channel_stats()
    norm = Normalizer(mean, std, rt.device, rt.channels_last)
    clean = read_split(tiny_split["split"], ds).clean
    res = train_model(ds, norm, cfg, rt, "mixmatch", clean, rt.generator(cfg.seed), np.random.default_rng(cfg.seed))
    in_memory = predict(res.model, ds, norm, rt, 64)
    path = tmp_path / "m.h5"
    write_model(path, res.model, ds, cfg, rt.describe(), "mixmatch", mean, std, 2, "s.h5", "", res.history, {})
    loaded = load_model(path)
    assert loaded.arch == arch and loaded.classes == ds.classes and loaded.image_size == cfg.image_size
    assert loaded.fingerprint == ds.fingerprint and loaded.config["arch"] == arch
    assert not loaded.module.training
    assert torch.allclose(loaded.predict(ds.images), in_memory, rtol=0, atol=1e-5)
    assert torch.equal(loaded.predict(ds.images).argmax(1), in_memory.argmax(1))


def test_train_clean_cli_writes_a_complete_weights_file(tiny_split, tmp_path):
    out = tmp_path / "purified.h5"
    r = runner.invoke(app, ["train-clean", str(tiny_split["data"]), "--split", str(tiny_split["split"]),
                            "--out", str(out), "--json", *SETS])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["mode"] == "mixmatch" and s["epochs"] == 2 and s["labelled"] + s["unlabelled"] == 120
    assert s["target_name"] == "cat"
    with h5py.File(out) as f:
        assert f.attrs["kind"] == "model" and f.attrs["mode"] == "mixmatch"
        assert f.attrs["arch"] == "fastnet" and len(f.attrs["norm_mean"]) == 3
        assert f.attrs["split_path"] == str(tiny_split["split"]) and f.attrs["target_name"] == "cat"
        assert all(isinstance(f["weights/model"][k], h5py.Dataset) for k in f["weights/model"])
        assert list(f["history/epoch"][()]) == [0, 1]
    assert not (tmp_path / "purified.ckpt.h5").exists()  # the checkpoint is removed once the weights are written


def test_baseline_trains_on_every_sample_without_a_split(tiny_split, tmp_path):
    out = tmp_path / "base.h5"
    r = runner.invoke(app, ["train-clean", str(tiny_split["data"]), "--baseline", "--out", str(out), "--json", *SETS])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["mode"] == "baseline" and s["labelled"] == 120 and s["unlabelled"] == 0 and s["target_name"] is None
    assert load_model(out).target == -1


def test_supervised_mode_trains_on_the_clean_pool_only(tiny_split, tmp_path):
    r = runner.invoke(app, ["train-clean", str(tiny_split["data"]), "--split", str(tiny_split["split"]), "--mode",
                            "supervised", "--out", str(tmp_path / "s.h5"), "--json", *SETS])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    with h5py.File(tiny_split["split"]) as f:
        assert s["labelled"] == int(f["pools/clean"][()].sum()) and s["unlabelled"] == 0


def test_arch_option_picks_the_architecture_at_its_standard_width(tiny_split, tmp_path):
    # the cpu preset's net is a width-16 ResNet-18; --arch replaces it, at that net's own standard width
    base = {k: v for k, v in {**TINY_OVERRIDES, "purify_epochs": 1}.items() if k not in ("arch", "width")}
    sets = [a for k, v in base.items() for a in ("--set", f"{k}={v}")]
    out = tmp_path / "f.h5"
    r = runner.invoke(app, ["train-clean", str(tiny_split["data"]), "--split", str(tiny_split["split"]), "--arch",
                            "fastnet", "--out", str(out), "--json", *sets])
    assert r.exit_code == 0, r.output
    m = load_model(out)
    assert m.arch == "fastnet" and m.width == 0 and m.module.head.in_features == 4 * 64
    assert np.isfinite(m.predict(torch.zeros(2, 3, 16, 16, dtype=torch.uint8)).numpy()).all()
