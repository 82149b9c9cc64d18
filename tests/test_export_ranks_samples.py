"""`bsd-audit export` lists every sample of a split, most suspicious first: the poison pool, then the
clean pool, each by the suspicion score; as CSV or as JSON (schema 1); --top and --class cut it down,
and the ground truth is a column when the artifact holds it."""

from __future__ import annotations

import csv
import io
import json

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from bsd_audit.cli import app
from bsd_audit.artifacts.split import read_split
from bsd_audit.report.ranking import rank_samples, suspicion_scores
from report_helpers import copy_with, make_split_artifact

runner = CliRunner()
COLUMNS = ["rank", "index", "path", "label", "pool", "suspicious", "oss", "als", "indicator", "suspicion"]


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return make_split_artifact(tmp_path_factory.mktemp("export"))


def _csv(*args) -> list[dict]:
    r = runner.invoke(app, ["export", *map(str, args)])
    assert r.exit_code == 0, r.output
    return list(csv.DictReader(io.StringIO(r.stdout)))


def _json(*args) -> dict:
    r = runner.invoke(app, ["export", *map(str, args), "--format", "json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def _check_order(rows: list[dict]) -> None:
    pools = [r["pool"] for r in rows]
    assert pools == sorted(pools, key=lambda p: p != "poison"), "poison pool first"
    for pool in ("poison", "clean"):
        s = [float(r["suspicion"]) for r in rows if r["pool"] == pool]
        assert s == sorted(s, reverse=True), f"suspicion not descending in the {pool} pool"


def test_csv_has_every_sample_in_order(split):
    artifact, _, truth = split
    rows = _csv(artifact)
    assert list(rows[0]) == COLUMNS + ["poisoned"]
    assert len(rows) == len(truth)
    assert [int(r["rank"]) for r in rows] == list(range(1, len(truth) + 1))
    assert sorted(int(r["index"]) for r in rows) == list(range(len(truth)))
    _check_order(rows)
    data = read_split(artifact)
    # the fixture's pools overlap on suspicion, so "poison pool first" is not just "by suspicion"
    sus = -data.scores["indicator"]
    assert sus[~data.clean].min() < sus[data.clean].max()
    for r in rows:
        i = int(r["index"])
        assert r["path"] == data.paths[i] and r["label"] == data.classes[data.labels[i]]
        assert r["pool"] == ("clean" if data.clean[i] else "poison")
        assert r["poisoned"] == ("true" if truth[i] else "false")
        assert float(r["suspicion"]) == pytest.approx(-float(data.scores["indicator"][i]), rel=1e-6)
        assert (r["oss"] == "") == bool(np.isnan(data.scores["oss"][i]))  # OSS only for the target class


def test_json_schema_and_same_rows_as_csv(split):
    artifact, _, truth = split
    doc = _json(artifact)
    assert doc["schema"] == 1 and doc["artifact"] == str(artifact)
    assert doc["target"]["name"] == "cat" and doc["num_samples"] == len(truth) == doc["num_rows"]
    assert doc["columns"] == COLUMNS + ["poisoned"] and doc["has_truth"] is True
    assert doc["score_directions"]["suspicion"] == "high = suspicious"
    assert all(list(r) == doc["columns"] for r in doc["rows"])
    _check_order(doc["rows"])
    csv_rows = _csv(artifact)
    assert [r["index"] for r in doc["rows"]] == [int(r["index"]) for r in csv_rows]
    assert all(isinstance(r["poisoned"], bool) for r in doc["rows"])
    assert any(r["oss"] is None for r in doc["rows"])  # NaN is null, never a bare NaN token


def test_top_and_class_filters(split):
    artifact, _, _ = split
    full = _csv(artifact)
    assert _csv(artifact, "--top", 5) == full[:5]
    bees = _csv(artifact, "--class", "bee")
    assert bees == [r for r in full if r["label"] == "bee"]  # ranks kept from the whole split
    two = _csv(artifact, "--class", "bee", "--class", "ant", "--top", 4)
    assert two == [r for r in full if r["label"] in ("bee", "ant")][:4]
    doc = _json(artifact, "--top", 3, "--class", "cat")
    assert doc["num_rows"] == 3 and doc["num_samples"] == len(full)


def test_bad_filters_are_refused(split):
    artifact, _, _ = split
    for args, needle in ((["--class", "dog"], "dog"), (["--top", "0"], "--top"), (["--format", "xml"], "xml")):
        r = runner.invoke(app, ["export", str(artifact), *args])
        assert r.exit_code == 2 and needle in r.stderr and "Traceback" not in r.output


def test_out_file_equals_stdout(split, tmp_path):
    artifact, _, _ = split
    out = tmp_path / "rank.json"
    r = runner.invoke(app, ["export", str(artifact), "--format", "json", "--out", str(out), "-q"])
    assert r.exit_code == 0 and r.stdout == ""
    assert json.loads(out.read_text())["rows"] == _json(artifact)["rows"]
    assert [p.name for p in tmp_path.iterdir()] == ["rank.json"]  # no temp file left


def test_no_truth_no_column(tmp_path):
    artifact, _, _ = make_split_artifact(tmp_path, with_truth=False)
    rows = _csv(artifact)
    assert list(rows[0]) == COLUMNS
    assert "poisoned" not in _json(artifact)["rows"][0]


def test_stored_suspicion_wins_and_nan_indicator_falls_back_to_als(split, tmp_path):
    artifact, _, _ = split
    n = len(read_split(artifact))
    stored = np.linspace(0, 1, n)
    with_sus = copy_with(artifact, tmp_path / "sus.h5", lambda f: f.create_dataset("scores/suspicion", data=stored))
    data = read_split(with_sus)
    sus, source = suspicion_scores(data)
    assert np.array_equal(sus, stored) and "/scores/suspicion" in source
    table = rank_samples(data)
    poison = [r.index for r in table.rows if r.pool == "poison"]
    assert poison == sorted(poison, reverse=True)  # stored score grows with the index

    def no_indicator(f):
        f["scores/indicator"][...] = np.nan
    data = read_split(copy_with(artifact, tmp_path / "noI.h5", no_indicator))
    sus, source = suspicion_scores(data)
    assert np.allclose(sus, -data.scores["als"]) and "ALS" in source


def test_the_suspicious_list_comes_first_and_is_marked(tmp_path):
    from report_helpers import make_split_artifact
    artifact, _, truth = make_split_artifact(tmp_path, with_verdict=True)
    with h5py.File(artifact) as f:
        listed = set(f["verdict/suspicious_index"][()].tolist())
        assert f["verdict"].attrs["verdict"] in ("poisoned", "inconclusive")
    assert listed  # the made-up trigger group is listed
    r = runner.invoke(app, ["export", str(artifact), "--format", "json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)["rows"]
    head = rows[:len(listed)]
    assert {row["index"] for row in head} == listed and all(row["suspicious"] for row in head)
    assert not any(row["suspicious"] for row in rows[len(listed):])
    s = [row["suspicion"] for row in head]
    assert s == sorted(s, reverse=True)
