"""`split` as a CI gate: documented exit codes for the verdict and the user's thresholds, one stable
JSON summary on stdout, and a quick initialisation-only mode."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from bsd_audit.cli import app
from bsd_audit.errors import EXIT_BAD_INPUT, EXIT_INCONCLUSIVE, EXIT_OK, EXIT_POISON
from conftest import TINY_OVERRIDES

runner = CliRunner()
SETS = [a for k, v in TINY_OVERRIDES.items() for a in ("--set", f"{k}={v}")]

# The JSON summary's documented top-level fields (docs/ci.md, "JSON summary"): a CI job may rely on them.
DOCUMENTED = {"command", "artifact", "num_samples", "classes", "fingerprint", "device", "target", "target_name",
              "source", "lga_target", "lga_target_name", "votes", "confidence", "second_likely_target",
              "second_likely_name", "agree", "loss_gap", "clean_size", "poison_size", "clean_share",
              "clean_per_class", "verdict", "gate", "wall_time_s"}
VERDICT_FIELDS = {"verdict", "score", "reason", "suspicious_count", "suspicious_share", "evidence", "suspected",
                  "target_in_doubt", "inputs"}


@pytest.fixture(scope="module")
def gated(tmp_path_factory, request):
    """One init-only split of the tiny poisoned set per gate option list, keyed by the options."""
    from conftest import make_tiny_poisoned
    base = tmp_path_factory.mktemp("gate")
    data = base / "data"
    make_tiny_poisoned(data)
    cache = {}

    def run(*options):
        if options not in cache:
            out = base / f"s{len(cache)}.h5"
            r = runner.invoke(app, ["split", str(data), "--out", str(out), "--json", "--init-only", *options, *SETS])
            cache[options] = (r, out)
        return cache[options]
    return run


def test_json_summary_has_every_documented_field(gated):
    r, _ = gated()
    assert r.exit_code == EXIT_OK, r.output
    s = json.loads(r.stdout)  # stdout holds exactly one JSON document
    assert DOCUMENTED <= set(s)
    assert VERDICT_FIELDS <= set(s["verdict"])
    assert s["verdict"]["verdict"] in ("poisoned", "clean", "inconclusive")
    assert s["gate"] == {"exit_code": 0, "reasons": [], "fail_on_verdict": False, "fail_on_confidence": None,
                         "fail_on_flagged": None, "strict": False}


def test_thresholds_map_to_exit_code_1(gated):
    r, _ = gated("--fail-on-confidence", "0")  # any vote share is >= 0
    assert r.exit_code == EXIT_POISON and json.loads(r.stdout)["gate"]["exit_code"] == EXIT_POISON
    assert "--fail-on-confidence" in json.loads(r.stdout)["gate"]["reasons"][0]
    r, _ = gated("--fail-on-confidence", "1.01")  # a share above 1 could never fire: refused
    assert r.exit_code == EXIT_BAD_INPUT and "--fail-on-confidence" in r.stderr
    r, _ = gated("--fail-on-flagged", "1.0")
    assert r.exit_code == EXIT_OK


def test_the_exit_code_is_the_one_the_json_gate_states(gated):
    # each verdict's exit code is driven in tests/test_gate.py; here the process and its JSON agree
    r, _ = gated("--fail-on-verdict")
    s = json.loads(r.stdout)
    expected = {"poisoned": EXIT_POISON, "inconclusive": EXIT_INCONCLUSIVE, "clean": EXIT_OK}[s["verdict"]["verdict"]]
    assert r.exit_code == expected == s["gate"]["exit_code"]


def test_init_only_stops_after_pool_initialisation(gated):
    r, out = gated()
    with h5py.File(out) as f:
        assert len(f["history/epoch"]) == TINY_OVERRIDES["T1"] + 1
        assert np.isnan(f["scores/indicator"][()]).all()
        # the initial pools are the answer, less the suspicious list (exclude_suspicious)
        listed = np.zeros(120, dtype=bool)
        listed[f["verdict/suspicious_index"][()]] = True
        assert np.array_equal(f["pools/clean"][()], f["pools/clean_init"][()] & ~listed)
        assert json.loads(f.attrs["config"])["stop_after_init"] is True
        assert f["verdict"].attrs["verdict"] == json.loads(r.stdout)["verdict"]["verdict"]
        assert len(f["scores/suspicion"]) == 120


def test_detect_target_gates_on_the_verdict_too(tiny_poisoned, tmp_path):
    data, _, _ = tiny_poisoned
    r = runner.invoke(app, ["detect-target", str(data), "--out", str(tmp_path / "t.h5"), "--json",
                            "--fail-on-verdict", *SETS])
    s = json.loads(r.stdout)
    assert VERDICT_FIELDS <= set(s["verdict"])
    expected = {"poisoned": EXIT_POISON, "inconclusive": EXIT_INCONCLUSIVE, "clean": EXIT_OK}[s["verdict"]["verdict"]]
    assert r.exit_code == expected == s["gate"]["exit_code"]
    with h5py.File(tmp_path / "t.h5") as f:
        assert f["verdict"].attrs["verdict"] == s["verdict"]["verdict"] and "fit_rank" in f["scores"]


def test_a_poisoned_set_takes_the_exit_1_branch(tmp_path):
    """End to end: a small set with a real patch trigger on 30 of 400 images, `split --fail-on-verdict`
    -> verdict poisoned, exit 1, and the gate's reason names the verdict. (The list's precision and recall
    are measured at benchmark scale: benchmarks/calibrate_verdict.py.)"""
    from conftest import make_tiny_poisoned
    manifest = make_tiny_poisoned(tmp_path / "data", classes=("ant", "bee", "cat", "dog", "elk"), per_class=80,
                                  n_poison=30)
    sets = [a for k, v in {**TINY_OVERRIDES, "holdout_epochs": 10}.items() for a in ("--set", f"{k}={v}")]
    r = runner.invoke(app, ["split", str(tmp_path / "data"), "--out", str(tmp_path / "s.h5"), "--json",
                            "--fail-on-verdict", *sets])
    s = json.loads(r.stdout)
    assert s["verdict"]["verdict"] == "poisoned", s["verdict"]["reason"]
    assert r.exit_code == EXIT_POISON == s["gate"]["exit_code"]
    assert s["gate"]["reasons"][0].startswith("verdict poisoned: ")
    assert s["target_name"] == "cat" and s["verdict"]["suspected"] == "cat"
    with h5py.File(tmp_path / "s.h5") as f:
        paths = [p.decode() for p in f["samples/path"][()]]
        listed = {paths[i] for i in f["verdict/suspicious_index"][()]}
    assert listed and all(p.startswith("cat/") for p in listed)
    assert listed & set(manifest["poisoned"])
