"""An interrupted `split` continues from the checkpoint it writes at every epoch end, during the
altruistic warm-up and during every BSD stage, and ends with the same pools, scores, history and
weights, bit for bit, as a run that never stopped. A real SIGKILL leaves no artifact and a readable
checkpoint; a checkpoint of other data, settings or options is refused, and --no-resume starts over."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest
from typer.testing import CliRunner

from bsd_audit import api
from bsd_audit.cli import app
from bsd_audit.config import resolve_config
from bsd_audit.errors import EXIT_BAD_INPUT, BadInputError
from bsd_audit.artifacts.h5 import open_artifact
from resume_helpers import OVERRIDES, SETS, Interrupt, assert_same_split, checkpoint_attrs, stop_at

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture(scope="module")
def tiny(tiny_split):
    """The tiny poisoned set, its manifest, and a split of it that was never interrupted (the
    session's tiny_split, made with the same settings as OVERRIDES)."""
    return {**tiny_split, "straight": tiny_split["split"]}


# TINY_OVERRIDES: the cpu preset's 3 warm-ups of 6 epochs (epochs 0-5, 6-11, 12-17); BSD epochs 0-2
# main warm-up, 3 MixMatch on the initial pools, 4-5 class completion, 6 selective drop
@pytest.mark.parametrize("phase,epoch", [
    ("target", 1),  # mid warm-up
    ("target", 5),  # the first warm-up done: the next one starts from new weights
    ("target", 8),  # mid second warm-up
    ("target", 17),  # every warm-up done, target not yet estimated
    ("bsd", 1),  # main model warm-up
    ("bsd", 3),  # MixMatch on the fixed initial pools
    ("bsd", 4),  # MixMatch with class completion
    ("bsd", 6),  # the last epoch (selective drop): only the artifact is left to write
])
def test_interrupted_split_resumes_to_the_same_result(tiny, tmp_path, phase, epoch):
    cfg = resolve_config("cpu", OVERRIDES)
    out = tmp_path / "split.h5"
    with pytest.raises(Interrupt):
        api.split(tiny["data"], out, cfg, truth_manifest=tiny["manifest"], after_epoch=stop_at(phase, epoch))
    ckpt = api.checkpoint_path(out)
    assert not out.exists() and ckpt.exists()
    assert checkpoint_attrs(ckpt) == {"phase": phase, "epoch": epoch + 1}
    s = api.split(tiny["data"], out, cfg, truth_manifest=tiny["manifest"]).to_dict()
    assert s["resumed_from"] == {"phase": phase, "epoch": epoch + 1, "settings_changed": {}}
    assert_same_split(tiny["straight"], out)
    assert not ckpt.exists()  # deleted once the artifact is written


def test_interrupted_twice(tiny, tmp_path):
    """A resumed run that is interrupted again resumes again: the checkpoint it writes is as good."""
    cfg = resolve_config("cpu", OVERRIDES)
    out = tmp_path / "split.h5"
    for phase, epoch in [("target", 2), ("bsd", 2), ("bsd", 5)]:
        with pytest.raises(Interrupt):
            api.split(tiny["data"], out, cfg, truth_manifest=tiny["manifest"], after_epoch=stop_at(phase, epoch))
    api.split(tiny["data"], out, cfg, truth_manifest=tiny["manifest"])
    assert_same_split(tiny["straight"], out)


def test_interrupted_split_from_a_target_artifact(tiny, tmp_path):
    """With --target-from the warm-up is skipped; Algorithm 1's checkpoint alone is resumed."""
    cfg = resolve_config("cpu", OVERRIDES)
    target = tmp_path / "target.h5"
    api.detect_target(tiny["data"], target, cfg)
    straight, out = tmp_path / "straight.h5", tmp_path / "split.h5"
    api.split(tiny["data"], straight, cfg, target_from=target)
    with pytest.raises(Interrupt):
        api.split(tiny["data"], out, cfg, target_from=target, after_epoch=stop_at("bsd", 4))
    s = api.split(tiny["data"], out, cfg, target_from=target).to_dict()
    assert s["source"] == "artifact" and s["resumed_from"]["epoch"] == 5
    assert_same_split(straight, out)


# ------------------------------------------------------------------------------ a real kill
def test_sigkill_mid_run_then_resume(tiny, tmp_path):
    """`python -m bsd_audit split` killed with SIGKILL during the BSD training: no artifact, an intact
    checkpoint, and the same command run again finishes with the uninterrupted run's result.
    BSD_AUDIT_EPOCH_DELAY (tests only) slows the epochs down so the kill lands mid-run."""
    out = tmp_path / "split.h5"
    ckpt = api.checkpoint_path(out)
    cmd = [sys.executable, "-m", "bsd_audit", "split", str(tiny["data"]), "--out", str(out), "--truth",
           str(tiny["manifest"]), "--preset", "cpu", "--quiet", *SETS]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen(cmd, env={**env, "BSD_AUDIT_EPOCH_DELAY": "0.3"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if ckpt.exists():
                seen = checkpoint_attrs(ckpt)  # written atomically: whatever is at the path is complete
                if seen["phase"] == "bsd" and seen["epoch"] >= 2:
                    break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed: " + proc.stderr.read().decode()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()
    left = checkpoint_attrs(ckpt)
    assert left["phase"] == "bsd" and 2 <= left["epoch"] < OVERRIDES["T3"]
    with open_artifact(ckpt, "checkpoint") as f:  # a whole, valid file: it opens and its header checks out
        assert "weights/main" in f and "optimizer/mixmatch" in f and "arrays/estimate.sce" in f

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert_same_split(tiny["straight"], out)
    assert not ckpt.exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".split.h5")]  # no temp file of the artifact


# ------------------------------------------------------------------------------ refusals
def _interrupted(tiny, out: Path, cfg, **kw) -> Path:
    with pytest.raises(Interrupt):
        api.split(tiny["data"], out, cfg, after_epoch=stop_at("bsd", 1), **kw)
    return api.checkpoint_path(out)


def test_checkpoint_of_other_settings_or_options_is_refused(tiny, tmp_path):
    cfg = resolve_config("cpu", OVERRIDES)
    out = tmp_path / "s.h5"
    ckpt = _interrupted(tiny, out, cfg)
    before = ckpt.read_bytes()
    other = resolve_config("cpu", {**OVERRIDES, "seed": 5})
    with pytest.raises(BadInputError, match=r"s\.ckpt\.h5: checkpoint made with other settings \(seed differ.*--no-resume"):
        api.split(tiny["data"], out, other)
    with pytest.raises(BadInputError, match=r"s\.ckpt\.h5: checkpoint of another run \(target differ.*--no-resume"):
        api.split(tiny["data"], out, cfg, target="bee")
    with pytest.raises(BadInputError, match=r"checkpoint of another run \(truth differ"):
        api.split(tiny["data"], out, cfg, truth_manifest=tiny["manifest"])
    assert ckpt.read_bytes() == before and not out.exists()  # a refusal touches nothing


def test_checkpoint_of_another_kind_of_device_is_refused(tiny, tmp_path):
    """A GPU run's generator state cannot continue on the CPU (nor the other way): refused by name."""
    cfg = resolve_config("cpu", OVERRIDES)
    out = tmp_path / "s.h5"
    ckpt = _interrupted(tiny, out, cfg)
    with h5py.File(ckpt, "a") as f:
        f.attrs["device"] = "cuda:0 (NVIDIA H100 80GB HBM3)"
    with pytest.raises(BadInputError, match=r"s\.ckpt\.h5: checkpoint made on cuda:0 .*this run is on cpu.*--no-resume"):
        api.split(tiny["data"], out, cfg)


def test_checkpoint_of_other_data_is_refused_through_the_cli(tiny, tmp_path):
    cfg = resolve_config("cpu", OVERRIDES)
    out = tmp_path / "s.h5"
    ckpt = _interrupted(tiny, out, cfg)
    other = tmp_path / "other"
    shutil.copytree(tiny["data"], other)
    next(other.rglob("*.png")).unlink()
    r = runner.invoke(app, ["split", str(other), "--out", str(out), "--preset", "cpu", "-q", *SETS])
    assert r.exit_code == EXIT_BAD_INPUT, r.output
    assert r.stderr.startswith("error: ") and "Traceback" not in r.output
    assert f"{ckpt}: checkpoint of another dataset" in r.stderr and "--no-resume" in r.stderr and "Delete it" in r.stderr
    # a damaged checkpoint is refused the same way, by name, with the same way out
    ckpt.write_bytes(ckpt.read_bytes()[:3000])
    r = runner.invoke(app, ["split", str(tiny["data"]), "--out", str(out), "--preset", "cpu", "-q", *SETS])
    assert r.exit_code == EXIT_BAD_INPUT and str(ckpt) in r.stderr and "--no-resume" in r.stderr, r.output


def test_no_resume_starts_over(tiny, tmp_path):
    out = tmp_path / "s.h5"
    ckpt = _interrupted(tiny, out, resolve_config("cpu", {**OVERRIDES, "seed": 5}))
    r = runner.invoke(app, ["split", str(tiny["data"]), "--out", str(out), "--truth", str(tiny["manifest"]),
                            "--preset", "cpu", "--json", "--no-resume", *SETS])
    assert r.exit_code == 0, r.output
    assert '"resumed_from": null' in r.stdout
    assert not ckpt.exists()
    assert_same_split(tiny["straight"], out)
