"""`bsd-audit split` on a tiny generated poisoned set: finds the target, writes a complete artifact,
and gives the same split for the same data, config and seed."""

from __future__ import annotations

import json

import h5py
import numpy as np
from typer.testing import CliRunner

from bsd_audit.cli import app
from bsd_audit.training.nets import build_model
from conftest import TINY_OVERRIDES

runner = CliRunner()


def _split(data, manifest, out, *extra):
    sets = [a for k, v in TINY_OVERRIDES.items() for a in ("--set", f"{k}={v}")]
    return runner.invoke(app, ["split", str(data), "--out", str(out), "--truth", str(manifest), "--json", *sets, *extra])


def test_split_finds_target_and_writes_artifact(tiny_poisoned, tmp_path):
    data, manifest_path, manifest = tiny_poisoned
    out = tmp_path / "split.h5"
    result = _split(data, manifest_path, out)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["target_name"] == "cat"
    assert summary["clean_size"] + summary["poison_size"] == 120
    assert summary["truth"]["num_poisoned"] == 8
    with h5py.File(out) as f:
        assert f.attrs["kind"] == "split" and f.attrs["schema_version"] == 1
        assert json.loads(f.attrs["config"])["T3"] == TINY_OVERRIDES["T3"]
        paths = [p.decode() for p in f["samples/path"][()]]
        assert paths == sorted(paths) and len(paths) == 120
        clean, poison = f["pools/clean_index"][()], f["pools/poison_index"][()]
        assert len(np.intersect1d(clean, poison)) == 0 and len(clean) + len(poison) == 120
        for name in ("oss", "als", "indicator"):
            assert f[f"scores/{name}"].shape == (120,)
        assert len(f["history/epoch"]) == TINY_OVERRIDES["T3"]
        assert f["history/poison_in_clean"][-1] == summary["truth"]["poison_in_clean"]
        assert f["target"].attrs["target_name"] == "cat"
        assert "weights/main" in f and "weights/altruistic" in f
        # the verdict's suspicious list never enters the clean pool (exclude_suspicious)
        listed = f["verdict/suspicious_index"][()]
        assert not f["pools/clean"][()][listed].any()
    # every poisoned sample is in the target folder: none can be in the clean pool of other classes
    poisoned = {paths.index(p) for p in manifest["poisoned"]}
    assert summary["truth"]["poison_in_clean"] == len(poisoned & set(clean.tolist()))


def test_split_is_deterministic(tiny_poisoned, tmp_path):
    data, manifest_path, _ = tiny_poisoned
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    assert _split(data, manifest_path, a).exit_code == 0
    assert _split(data, manifest_path, b).exit_code == 0
    with h5py.File(a) as fa, h5py.File(b) as fb:
        assert np.array_equal(fa["pools/clean"][()], fb["pools/clean"][()])
        assert np.allclose(fa["scores/indicator"][()], fb["scores/indicator"][()], equal_nan=True)


def test_split_reuses_detect_target_artifact(tiny_poisoned, tmp_path):
    data, manifest_path, _ = tiny_poisoned
    target_h5 = tmp_path / "target.h5"
    sets = [a for k, v in TINY_OVERRIDES.items() for a in ("--set", f"{k}={v}")]
    r = runner.invoke(app, ["detect-target", str(data), "--out", str(target_h5), "--json", *sets])
    assert r.exit_code == 0, r.output
    detected = json.loads(r.stdout)
    assert detected["target_name"] == "cat"
    r = _split(data, manifest_path, tmp_path / "s.h5", "--target-from", str(target_h5))
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["source"] == "artifact" and s["target_name"] == "cat"
    r = _split(data, manifest_path, tmp_path / "u.h5", "--target", "bee")
    assert json.loads(r.stdout)["target_name"] == "bee" and json.loads(r.stdout)["source"] == "user"


def test_split_with_its_own_altruistic_net(tiny_poisoned, tmp_path):
    """The fast preset's shape: the altruistic model on another net than the main model. The split runs
    through, the target comes from that net's warm-up, and each model's weights are stored in its own
    net's shapes. (Which class a width-4 net's vote picks on the tiny set is noise: it fits the tiny
    poison late, fit rank about 0.8, so no class stands out; the default net's tests check the target.)"""
    data, manifest_path, _ = tiny_poisoned
    out = tmp_path / "split.h5"
    result = _split(data, manifest_path, out, "--set", "altruistic_arch=resnet18", "--set", "altruistic_width=4")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["source"] == "lga" and summary["target_name"] == max(summary["votes"], key=summary["votes"].get)
    with h5py.File(out) as f:
        alt = {k: f["weights/altruistic"][k].shape for k in f["weights/altruistic"]}
        main = {k: f["weights/main"][k].shape for k in f["weights/main"]}
    assert alt == _shapes("resnet18", 4)
    assert main == _shapes("fastnet", TINY_OVERRIDES["width"])


def _shapes(arch: str, width: float) -> dict[str, tuple]:
    """Every weight's shape in a fresh 3-class model of that net."""
    return {k: tuple(v.shape) for k, v in build_model(arch, 3, width).state_dict().items()}
