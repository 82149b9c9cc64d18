"""Several audits in a row in one process, and in parallel processes on different output paths, give
the same split: no state leaks from one run into the next, no cross-talk between processes.
(Memory growth is measured by benchmarks/stress.py, not asserted here.)"""

from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np

from bsd_audit import api
from bsd_audit.config import resolve_config
from conftest import TINY_OVERRIDES
from resume_helpers import SETS


def _pools(path):
    with h5py.File(path) as f:
        return f["pools/clean"][()], f["scores/indicator"][()], f["weights/main"]["head.weight"][()]


def test_repeated_and_parallel_runs_give_the_same_split(tiny_poisoned, tmp_path):
    data, _, _ = tiny_poisoned
    cfg = resolve_config("cpu", TINY_OVERRIDES)
    for i in range(3):
        api.split(data, tmp_path / f"seq{i}.h5", cfg)
    cmd = [sys.executable, "-m", "bsd_audit", "split", str(data), "--quiet", *SETS]
    procs = [subprocess.Popen(cmd + ["--out", str(tmp_path / f"par{i}.h5")], stderr=subprocess.PIPE) for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
    ref = _pools(tmp_path / "seq0.h5")
    for name in ("seq1", "seq2", "par0", "par1"):
        got = _pools(tmp_path / f"{name}.h5")
        assert np.array_equal(got[0], ref[0]), name
        assert np.array_equal(got[1], ref[1], equal_nan=True), name
        assert np.array_equal(got[2], ref[2]), name
    assert not list(tmp_path.glob("*.ckpt.h5")) and not list(tmp_path.glob(".*tmp*"))
