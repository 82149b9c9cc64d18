"""A NaN or infinite loss in any training stage stops the run with exit code 7 and a message that
names the stage, the epoch and what to try; the last good checkpoint stays, and the same command
with a lower learning rate continues from it. The loss is made to diverge for real, with an absurd
learning rate, on tiny data."""

from __future__ import annotations

import math

import pytest
from typer.testing import CliRunner

from bsd_audit import api
from bsd_audit.cli import app
from bsd_audit.config import Config, lga_epochs, resolve_config
from bsd_audit.training.loops import check_finite
from bsd_audit.errors import EXIT_DIVERGED, TrainingDivergedError
from resume_helpers import OVERRIDES, SETS, assert_same_split, straight_split

HUGE = 1e30
LGA_EPOCHS = lga_epochs(resolve_config("cpu", OVERRIDES), 120)  # every epoch of every warm-up (120 images)
runner = CliRunner()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return straight_split(tmp_path_factory.mktemp("diverge"), truth=False)


def _cli(*args):
    return runner.invoke(app, [*args, "--preset", "cpu", "-q", *SETS])


def test_check_finite_names_stage_epoch_and_fix():
    cfg = Config()
    assert check_finite(0.5, "x", 0, 1, cfg, "warmup_lr") == 0.5
    with pytest.raises(TrainingDivergedError) as info:
        check_finite(math.inf, "main model warm-up", 2, 10, cfg, "warmup_lr")
    msg = str(info.value)
    assert info.value.exit_code == EXIT_DIVERGED == 7
    assert "main model warm-up loss became infinite in epoch 3 of 10" in msg
    assert "--set warmup_lr=0.0002" in msg and "check the data" in msg  # already at the default: a tenth of it


def test_split_warmup_diverges_exit_7(tiny, tmp_path):
    out = tmp_path / "s.h5"
    r = _cli("split", str(tiny["data"]), "--out", str(out), "--set", f"altruistic_lr={HUGE}")
    assert r.exit_code == EXIT_DIVERGED, r.output
    assert r.stderr.startswith("error: training diverged: the altruistic warm-up (LGA) loss became NaN in epoch 1 "
                               f"of {LGA_EPOCHS}")
    assert f"--set altruistic_lr={Config().altruistic_lr:g}" in r.stderr  # back to the default
    assert "No checkpoint was written before it" in r.stderr  # the very first epoch diverged
    assert "Traceback" not in r.output
    assert not out.exists() and not api.checkpoint_path(out).exists()


@pytest.mark.parametrize("field,stage,epoch,of,kept,off", [
    # the held-out check trains the main net at warmup_lr right after the warm-up; without it, the main warm-up
    ("warmup_lr", "held-out check", 1, OVERRIDES["holdout_epochs"], f"after {LGA_EPOCHS} epoch(s) of the altruistic warm-up", {}),
    ("warmup_lr", "main model warm-up", 1, 7, f"after {LGA_EPOCHS} epoch(s) of the altruistic warm-up", {"holdout_epochs": 0}),
    ("mixmatch_lr", "MixMatch (init stage)", 4, 7, "after 3 epoch(s) of the BSD training", {}),
])
def test_split_stage_diverges_then_resumes_with_a_lower_rate(tiny, tmp_path, field, stage, epoch, of, kept, off):
    out = tmp_path / "s.h5"
    ckpt = api.checkpoint_path(out)
    with pytest.raises(TrainingDivergedError) as info:
        api.split(tiny["data"], out, resolve_config("cpu", {**OVERRIDES, **off, field: HUGE}))
    msg = str(info.value)
    assert f"the {stage} loss became NaN in epoch {epoch} of {of}" in msg
    assert f"The last good checkpoint, {ckpt} ({kept}), is kept" in msg and "--no-resume" in msg
    assert not out.exists() and ckpt.exists()
    # the same command at the default rate continues from the last good epoch; nothing of the diverged
    # epoch was saved, so the result is the one a run at the default rate gives from the start
    s = api.split(tiny["data"], out, resolve_config("cpu", {**OVERRIDES, **off})).to_dict()
    default = getattr(Config(), field)
    assert s["resumed_from"]["settings_changed"] == {field: [HUGE, default]}
    if not off:
        assert_same_split(tiny["straight"], out)
    assert not ckpt.exists()


def test_altruistic_model_diverges_during_bsd(tiny, tmp_path):
    """g_φ keeps training until T2: its loss is checked there too (a raised rate on resume makes it diverge)."""
    out = tmp_path / "s.h5"

    class Stop(Exception):
        pass

    def stop_after_warmup(phase, e):
        if phase == "target" and e == LGA_EPOCHS - 1:
            raise Stop

    with pytest.raises(Stop):
        api.split(tiny["data"], out, resolve_config("cpu", OVERRIDES), after_epoch=stop_after_warmup)
    with pytest.raises(TrainingDivergedError, match=r"the altruistic model loss became NaN in epoch 1 of 7.*"
                                                    rf"after {LGA_EPOCHS} epoch\(s\) of the altruistic warm-up"):
        api.split(tiny["data"], out, resolve_config("cpu", {**OVERRIDES, "altruistic_lr": HUGE}))


def test_train_clean_diverges_exit_7(tiny, tmp_path):
    out = tmp_path / "baseline.h5"
    r = _cli("train-clean", str(tiny["data"]), "--baseline", "--out", str(out), "--set", "purify_epochs=2",
             "--set", f"warmup_lr={HUGE}")
    assert r.exit_code == EXIT_DIVERGED, r.output
    assert "the train-clean (baseline) loss became NaN in epoch 1 of 2" in r.stderr
    assert "--set warmup_lr=0.002" in r.stderr and "Traceback" not in r.output
    assert not out.exists()
    cfg = resolve_config("cpu", {**OVERRIDES, "purify_epochs": 2, "mixmatch_lr": HUGE})
    with pytest.raises(TrainingDivergedError, match=r"the train-clean \(mixmatch\) loss became NaN in epoch 1 of 2"):
        api.train_clean(tiny["data"], tmp_path / "purified.h5", cfg, tiny["straight"])
