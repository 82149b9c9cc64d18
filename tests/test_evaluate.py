"""`bsd-audit evaluate`: CA, ASR and DER of a weights file, per-class accuracy, the confusion matrix,
the split's quality with a manifest; JSON and HDF5 output; CI thresholds with exit code 5; clear
errors for files that do not fit."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from bsd_audit.cli import app
from bsd_audit.errors import EXIT_BAD_INPUT, EXIT_MODEL_GATE
from conftest import TINY_OVERRIDES

runner = CliRunner()
SETS = [a for k, v in {**TINY_OVERRIDES, "purify_epochs": 2}.items() for a in ("--set", f"{k}={v}")]


@pytest.fixture(scope="module")
def models(tiny_split):
    out = {}
    for name, extra in (("purified", ["--split", str(tiny_split["split"])]), ("baseline", ["--baseline"])):
        path = tiny_split["base"] / f"{name}.h5"
        if not path.exists():
            r = runner.invoke(app, ["train-clean", str(tiny_split["data"]), *extra, "--out", str(path), "-q", *SETS])
            assert r.exit_code == 0, r.output
        out[name] = path
    return out


def _evaluate(tiny_split, model, *extra):
    return runner.invoke(app, ["evaluate", str(model), "--test", str(tiny_split["test"]), "--json", *extra])


def test_reports_ca_asr_der_and_split_quality(tiny_split, models, tmp_path):
    out = tmp_path / "metrics.h5"
    r = _evaluate(tiny_split, models["purified"], "--triggered", str(tiny_split["triggered"]), "--baseline",
                  str(models["baseline"]), "--truth", str(tiny_split["manifest"]), "--out", str(out))
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["num_test"] == 45 and 0 <= s["ca"] <= 100
    assert s["num_triggered"] == 30  # the 30 non-target triggered images (target folder excluded)
    assert s["target_name"] == "cat" and s["target_source"] == "manifest"
    conf = np.array(s["confusion"])
    assert conf.shape == (3, 3) and conf.sum() == 45
    assert s["ca"] == pytest.approx(100 * np.trace(conf) / 45, abs=0.01)
    for c, acc in s["per_class_accuracy"].items():
        i = s["classes"].index(c)
        assert acc == pytest.approx(100 * conf[i, i] / conf[i].sum(), abs=0.01)
    b = s["baseline"]
    expected = (max(0, b["asr"] - s["asr"]) - max(0, b["ca"] - s["ca"]) + 100) / 2
    assert s["der"] == pytest.approx(expected, abs=0.02)
    q = s["split_quality"]
    with h5py.File(tiny_split["split"]) as f:
        assert q["poison_in_clean"] == f["truth"].attrs["poison_in_clean"] and q["num_poisoned"] == 8
        assert q["auroc_als"] == pytest.approx(f["truth"].attrs["auroc_als"])
    assert s["thresholds"]["passed"]
    with h5py.File(out) as f:
        assert f.attrs["kind"] == "metrics"
        assert json.loads(f.attrs["summary"])["ca"] == s["ca"]
        assert f["confusion"][()].tolist() == s["confusion"]
        assert len(f["predictions/test"]) == 45 and len(f["predictions/triggered"]) == 30


def test_asr_target_defaults_to_the_split_estimate_stored_in_the_model(tiny_split, models):
    r = _evaluate(tiny_split, models["purified"], "--triggered", str(tiny_split["triggered"]))
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["target_name"] == "cat" and s["target_source"] == "split estimate"
    r = _evaluate(tiny_split, models["baseline"], "--triggered", str(tiny_split["triggered"]))
    assert r.exit_code == EXIT_BAD_INPUT and "--target NAME or --truth" in r.output


def test_thresholds_turn_into_exit_code_5(tiny_split, models):
    ok = json.loads(_evaluate(tiny_split, models["purified"], "--triggered", str(tiny_split["triggered"])).stdout)
    r = _evaluate(tiny_split, models["purified"], "--min-ca", str(ok["ca"] + 0.5))
    assert r.exit_code == EXIT_MODEL_GATE
    s = json.loads(r.stdout)
    assert not s["thresholds"]["passed"] and "below --min-ca" in s["thresholds"]["failures"][0]
    r = _evaluate(tiny_split, models["purified"], "--triggered", str(tiny_split["triggered"]),
                  "--max-asr", str(ok["asr"] - 0.5 if ok["asr"] >= 0.5 else -1))
    assert r.exit_code == EXIT_MODEL_GATE and "above --max-asr" in r.output
    r = _evaluate(tiny_split, models["purified"], "--min-ca", "0", "--triggered", str(tiny_split["triggered"]),
                  "--max-asr", "100")
    assert r.exit_code == 0
    r = _evaluate(tiny_split, models["purified"], "--max-asr", "5")
    assert r.exit_code == EXIT_BAD_INPUT and "--max-asr needs --triggered" in r.output


def test_refuses_files_that_do_not_fit(tiny_split, models, tmp_path):
    # not HDF5
    bogus = tmp_path / "bogus.h5"
    bogus.write_text("not a model")
    r = _evaluate(tiny_split, bogus)
    assert r.exit_code == EXIT_BAD_INPUT and "bogus.h5: not an HDF5 file" in r.output
    # truncated
    cut = tmp_path / "cut.h5"
    cut.write_bytes(models["purified"].read_bytes()[:4000])
    r = _evaluate(tiny_split, cut)
    assert r.exit_code == EXIT_BAD_INPUT and "cut.h5" in r.output and "Traceback" not in r.output
    # a split artifact where a model is expected
    r = _evaluate(tiny_split, tiny_split["split"])
    assert r.exit_code == EXIT_BAD_INPUT and "a 'split' artifact where a 'model' one is needed" in r.output
    # a test set whose classes the model does not know
    odd = tmp_path / "odd"
    shutil.copytree(tiny_split["test"], odd)
    (odd / "ant").rename(odd / "zebra")
    r = runner.invoke(app, ["evaluate", str(models["purified"]), "--test", str(odd)])
    assert r.exit_code == EXIT_BAD_INPUT and "zebra" in r.output and "not classes of the model" in r.output


def test_train_clean_refuses_a_split_of_other_data(tiny_split, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(tiny_split["data"], other)
    next(other.rglob("*.png")).unlink()
    out = tmp_path / "p.h5"
    r = runner.invoke(app, ["train-clean", str(other), "--split", str(tiny_split["split"]), "--out", str(out), *SETS])
    assert r.exit_code == EXIT_BAD_INPUT and "computed on a different dataset" in r.output
    assert not out.exists()
    r = runner.invoke(app, ["train-clean", str(other), "--out", str(out), *SETS])
    assert r.exit_code == EXIT_BAD_INPUT and "needs --split" in r.output
