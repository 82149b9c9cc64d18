"""An interrupted `detect-target` continues from the checkpoint it writes at every warm-up epoch and
writes the same target artifact, bit for bit, as a run that never stopped; --no-resume starts over,
and a checkpoint of another run (a split's, other settings) is refused by name."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bsd_audit import api
from bsd_audit.cli import app
from bsd_audit.config import resolve_config
from bsd_audit.errors import EXIT_BAD_INPUT, BadInputError
from resume_helpers import OVERRIDES, SETS, Interrupt, assert_same_datasets, checkpoint_attrs, stop_at

runner = CliRunner()


@pytest.fixture(scope="module")
def straight(tiny_split, tmp_path_factory):
    """A detect-target run of the tiny poisoned set that was never interrupted."""
    out = tmp_path_factory.mktemp("detect") / "target.h5"
    api.detect_target(tiny_split["data"], out, resolve_config("cpu", OVERRIDES))
    return {"data": tiny_split["data"], "target": out}


def assert_same_target(a, b) -> None:
    """Same votes, losses, fit ranks, verdict inputs and altruistic weights, bit for bit."""
    assert_same_datasets(a, b, "weights/altruistic")


# TINY_OVERRIDES: the cpu preset's 3 warm-ups of 6 epochs (epochs 0-5, 6-11, 12-17)
@pytest.mark.parametrize("epoch", [2, 5, 17])  # mid warm-up; the first warm-up done; all done, no estimate yet
def test_interrupted_detect_target_resumes_to_the_same_artifact(straight, tmp_path, epoch):
    cfg = resolve_config("cpu", OVERRIDES)
    out = tmp_path / "target.h5"
    with pytest.raises(Interrupt):
        api.detect_target(straight["data"], out, cfg, after_epoch=stop_at("target", epoch))
    ckpt = api.checkpoint_path(out)
    assert not out.exists() and checkpoint_attrs(ckpt) == {"phase": "target", "epoch": epoch + 1}
    s = api.detect_target(straight["data"], out, cfg).to_dict()
    assert s["resumed_from"] == {"phase": "target", "epoch": epoch + 1, "settings_changed": {}}
    assert_same_target(straight["target"], out)
    assert not ckpt.exists()  # deleted once the artifact is written


def test_no_resume_starts_over_and_a_split_checkpoint_is_refused(straight, tmp_path):
    out = tmp_path / "t.h5"
    with pytest.raises(Interrupt):  # a run of other settings left a checkpoint
        api.detect_target(straight["data"], out, resolve_config("cpu", {**OVERRIDES, "seed": 5}),
                     after_epoch=stop_at("target", 3))
    ckpt = api.checkpoint_path(out)
    before = ckpt.read_bytes()
    r = runner.invoke(app, ["detect-target", str(straight["data"]), "--out", str(out), "--preset", "cpu", "-q", *SETS])
    assert r.exit_code == EXIT_BAD_INPUT and f"{ckpt}: checkpoint made with other settings" in r.stderr, r.output
    assert "--no-resume" in r.stderr and ckpt.read_bytes() == before and not out.exists()

    r = runner.invoke(app, ["detect-target", str(straight["data"]), "--out", str(out), "--preset", "cpu", "--json",
                            "--no-resume", *SETS])
    assert r.exit_code == 0, r.output
    assert '"resumed_from": null' in r.stdout and not ckpt.exists()
    assert_same_target(straight["target"], out)

    # split and detect-target writing to the same name: neither resumes the other's run
    cfg = resolve_config("cpu", OVERRIDES)
    with pytest.raises(Interrupt):
        api.split(straight["data"], out, cfg, after_epoch=stop_at("target", 1), force=True)
    with pytest.raises(BadInputError, match=r"t\.ckpt\.h5: checkpoint of another run \(command differ"):
        api.detect_target(straight["data"], out, cfg)


def test_ctrl_c_then_the_same_command_resumes(straight, tmp_path, monkeypatch):
    """Ctrl-C during the warm-up: exit 130, a message that says the command continues, the checkpoint
    on disk; the same command line run again resumes from it and writes the uninterrupted artifact."""
    import bsd_audit.artifacts.checkpoint as split_checkpoint

    out = tmp_path / "t.h5"
    calls = []

    def ctrl_c_at_the_fourth_epoch():
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt

    cmd = ["detect-target", str(straight["data"]), "--out", str(out), "--preset", "cpu", *SETS]
    with monkeypatch.context() as m:
        m.setattr(split_checkpoint, "epoch_delay", ctrl_c_at_the_fourth_epoch)
        r = runner.invoke(app, [*cmd, "-q"])
    assert r.exit_code == 130, r.output
    assert "interrupted" in r.stderr and "detect-target, split and train-clean continue" in r.stderr
    assert not out.exists() and checkpoint_attrs(api.checkpoint_path(out)) == {"phase": "target", "epoch": 4}
    r = runner.invoke(app, cmd)
    assert r.exit_code == 0, r.output
    assert "resumed from its checkpoint after warm-up epoch 4" in r.stderr
    assert_same_target(straight["target"], out)
