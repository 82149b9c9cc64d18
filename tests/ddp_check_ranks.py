"""Run by test_split_runs_under_torchrun.py under torchrun: ranks that read different checkpoints
(rank 0 finds one, the others none: --out on a disk only rank 0's machine sees) must all stop with
the error that says so. Exits 0 when that error was raised, 1 otherwise."""

from __future__ import annotations

import sys
from pathlib import Path

from bsd_audit.config import Config
from bsd_audit.training.distributed import world
from bsd_audit.training.runtime import make_runtime
from bsd_audit.errors import BadInputError
from bsd_audit.artifacts.checkpoint import check_ranks_see

make_runtime(Config(device="cpu", threads=1))
path = Path(sys.argv[1])
check_ranks_see(path, ("bsd", 3))  # every rank sees the same: no error
try:
    check_ranks_see(path, ("bsd", 3) if world().rank == 0 else None)
except BadInputError as exc:
    ok = str(exc).startswith(f"{path}: the ranks of this run do not all see the same checkpoint")
    sys.exit(0 if ok and "--no-resume" in str(exc) else 1)
sys.exit(1)
