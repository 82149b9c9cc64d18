"""`split` runs data-parallel under torchrun (torch.distributed, gloo on the CPU): the same target and a
split that agrees with the single-process run, one artifact written by rank 0 alone, one JSON summary,
and a resume after every rank was killed that ends bit for bit where an uninterrupted run ends.
Underneath, one epoch of the tool's training loop gives the same weights in two ranks as in one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc to find torchrun's workers")

from bsd_audit import api
from resume_helpers import SETS, assert_same_split, checkpoint_attrs, datasets, straight_split

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), str(TESTS), os.environ.get("PYTHONPATH")])),
       "OMP_NUM_THREADS": "1"}
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def _kill_all(pid: int) -> None:
    """SIGKILL torchrun and its workers, which it starts in sessions of their own."""
    family, i = [pid], 0
    while i < len(family):
        for task in Path(f"/proc/{family[i]}/task").glob("*/children"):
            family += [int(c) for c in task.read_text().split()]
        i += 1
    for p in reversed(family):
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _split_cmd(data: Path, out: Path, manifest: Path) -> list[str]:
    return [*TORCHRUN, "-m", "bsd_audit", "split", str(data), "--out", str(out), "--truth", str(manifest),
            "--preset", "cpu", "--json", *SETS]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A single-process split of the tiny set (``one``) and the same split under torchrun (``two``)."""
    ref = straight_split(tmp_path_factory.mktemp("ddp"))
    two = ref["base"] / "two" / "split.h5"
    two.parent.mkdir()
    done = subprocess.run(_split_cmd(ref["data"], two, ref["manifest"]), env=ENV, capture_output=True, text=True,
                          timeout=300, cwd=two.parent)
    return {**ref, "one": ref["straight"], "single": ref["summary"], "two": two, "done": done}


def test_data_parallel_epoch_equals_one_process(tmp_path):
    one, two = tmp_path / "one.npz", tmp_path / "two.npz"
    script = str(TESTS / "ddp_step.py")
    subprocess.run([sys.executable, script, str(one)], env=ENV, check=True, timeout=120)
    r = subprocess.run([*TORCHRUN, script, str(two)], env=ENV, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    a, b = np.load(one), np.load(two)
    # supervised epochs: each rank trains on half of every global batch, DDP averages the gradients
    for k in (k for k in a.files if k.startswith("supervised.")):
        np.testing.assert_allclose(b[k], a[k], atol=1e-6, err_msg=k)
    # per-sample evaluation: each rank predicts its share, gathered back in sample order
    np.testing.assert_allclose(b["supervised_logits"], a["supervised_logits"], atol=1e-5)
    np.testing.assert_allclose(b["supervised_feats"], a["supervised_feats"], atol=1e-5)
    assert (b["seen"] == 2).all()  # two epochs: every sample once per epoch, on exactly one rank
    assert float(b["rank_spread"]) == 0.0  # after MixMatch too, the ranks hold the same weights
    assert np.isfinite(b["losses"]).all()


def test_torchrun_split_agrees_with_one_process(runs):
    done = runs["done"]
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, "rank 0 alone prints the JSON summary"
    s, single = json.loads(lines[0]), runs["single"]
    assert s["device"]["ranks"] == 2
    assert s["target_name"] == single["target_name"] == "cat"
    one, two = datasets(runs["one"]), datasets(runs["two"])
    a, b = one["pools/clean"].astype(bool), two["pools/clean"].astype(bool)
    agreement = float((a == b).mean())
    # Agreement beyond what two pools of these sizes share by chance (Cohen's kappa): batch norm's
    # per-rank statistics move samples, and on 120 samples the pool sizes move with them (48 and 74
    # clean on one machine), so raw agreement depends on the CPU's rounding (0.88 on one machine, 0.78
    # on another). Measured kappa 0.58 at 0.78 agreement; 0 is chance, and single-process runs under
    # seeds 0, 1 and 2 reach 0.46, -0.35 and -0.57 pairwise on this set.
    chance = float(a.mean() * b.mean() + (1 - a.mean()) * (1 - b.mean()))
    kappa = (agreement - chance) / (1 - chance)
    assert kappa >= 0.4, (agreement, chance, kappa)
    assert s["clean_size"] == int(two["pools/clean"].sum())
    # rank 0 alone wrote: the artifact and nothing else (no checkpoint left, no temp or per-rank file)
    assert sorted(p.name for p in runs["two"].parent.iterdir()) == ["split.h5"]


def test_torchrun_split_resumes_after_every_rank_is_killed(runs, tmp_path):
    out = tmp_path / "split.h5"
    ckpt = api.checkpoint_path(out)
    cmd = _split_cmd(runs["data"], out, runs["manifest"])
    proc = subprocess.Popen(cmd, env={**ENV, "BSD_AUDIT_EPOCH_DELAY": "0.3"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if ckpt.exists() and checkpoint_attrs(ckpt) == {"phase": "bsd", "epoch": 3}:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed: " + proc.stderr.read().decode()
        _kill_all(proc.pid)  # torchrun and both ranks at once
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            _kill_all(proc.pid)
            proc.wait()
    assert not out.exists() and checkpoint_attrs(ckpt)["phase"] == "bsd"
    again = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["resumed_from"]["phase"] == "bsd"
    assert_same_split(runs["two"], out)
    assert not ckpt.exists()


def test_ranks_that_see_different_checkpoints_are_stopped(tmp_path):
    r = subprocess.run([*TORCHRUN, str(TESTS / "ddp_check_ranks.py"), str(tmp_path / "s.ckpt.h5")], env=ENV,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_torchrun_split_from_the_disk_store_is_the_same(runs, tmp_path):
    """Ranks streaming batches from the decode cache's file split exactly as ranks holding the data
    in memory (the first rank of the machine fills the cache, the other reads it)."""
    out = tmp_path / "split.h5"
    cmd = _split_cmd(runs["data"], out, runs["manifest"]) + ["--data-store", "disk"]
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert_same_split(runs["two"], out)
