"""Reading an artifact runs no code and trusts nothing: no pickle anywhere (tensors are HDF5 datasets),
and a file from a newer schema, a truncated file or a file of other data is refused, by name, with
exit code 2 and nothing written, where a command takes one as input (split --target-from,
train-clean --split) and where a run resumes from its checkpoint."""

from __future__ import annotations

import ast
import os
import shutil
from pathlib import Path

import h5py
import pytest
from typer.testing import CliRunner

from bsd_audit import api
from bsd_audit.cli import app
from bsd_audit.config import resolve_config
from bsd_audit.errors import EXIT_BAD_INPUT
from bsd_audit.artifacts.h5 import SCHEMA_VERSION
from conftest import make_tiny_poisoned
from resume_helpers import OVERRIDES, SETS

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


# ------------------------------------------------------------------------------ no pickle
# modules that deserialise by running code, and the calls that do it
_UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}
_UNSAFE_CALLS = {("torch", "load"), ("torch", "save"), ("np", "load"), ("numpy", "load")}


def _unsafe_uses(path: Path) -> list[str]:
    """Imports of pickle-like modules, torch.load/torch.save/np.load calls and allow_pickle=True in a
    source file, found in its syntax tree (a docstring saying "no pickle" is not a use)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in _UNSAFE_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in _UNSAFE_MODULES:
            found.append(f"from {node.module} import ...")
        elif isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and (f.value.id, f.attr) in _UNSAFE_CALLS:
                found.append(f"{f.value.id}.{f.attr}(...)")
            found += [f"{k.arg}=True" for k in node.keywords
                      if k.arg == "allow_pickle" and isinstance(k.value, ast.Constant) and k.value.value is True]
    return [f"{path.name}:{u}" for u in found]


def test_no_pickle_in_the_source():
    files = [p for d in ("bsd_audit", "scripts", "benchmarks") for p in sorted((REPO / d).rglob("*.py"))]
    assert len(files) > 30 and REPO / "bsd_audit" / "artifacts" / "h5.py" in files
    unsafe = [u for p in files for u in _unsafe_uses(p)]
    assert unsafe == [], f"code that can unpickle or pickle: {unsafe}"


def test_the_scan_sees_what_it_looks_for(tmp_path):
    """The scan is not vacuous: each form it forbids is found in a sample."""
    sample = tmp_path / "sample.py"
    sample.write_text('"""no pickle here"""\nimport pickle\nfrom joblib import load\nimport torch, numpy as np\n'
                      'torch.load("w.pt")\nnp.load("a.npy", allow_pickle=True)\n')
    found = _unsafe_uses(sample)
    assert [u.split(":", 1)[1] for u in found] == ["import pickle", "from joblib import ...", "torch.load(...)",
                                                   "np.load(...)", "allow_pickle=True"]


# ------------------------------------------------------------------------------ refusals
@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Tiny data, its detect-target and split artifacts, and the same data with one image gone."""
    base = tmp_path_factory.mktemp("reader")
    data = base / "data"
    make_tiny_poisoned(data)
    cfg = resolve_config("cpu", OVERRIDES)
    target, split = base / "target.h5", base / "split.h5"
    api.detect_target(data, target, cfg)
    api.split(data, split, cfg, target_from=target)
    other = base / "other"
    shutil.copytree(data, other)
    next(other.rglob("*.png")).unlink()
    return {"data": data, "other": other, "target": target, "split": split}


def _newer(src: Path, dst: Path) -> Path:
    shutil.copy(src, dst)
    with h5py.File(dst, "a") as f:
        f.attrs["schema_version"] = SCHEMA_VERSION + 1
    return dst


def _truncated(src: Path, dst: Path) -> Path:
    raw = src.read_bytes()
    dst.write_bytes(raw[: len(raw) // 2])
    return dst


FAULTS = {  # fault -> (make the bad input, what the message must say)
    "newer schema": (_newer, f"written with artifact schema {SCHEMA_VERSION + 1}, newer than this tool's "
                             f"({SCHEMA_VERSION}). Upgrade bsd-audit"),
    "truncated": (_truncated, "truncated"),
    "other data": (lambda src, dst: src, "computed on a different dataset"),
}
COMMANDS = {  # command -> (artifact it reads, its arguments given that artifact)
    "split --target-from": ("target", lambda data, art, out: ["split", str(data), "--target-from", str(art),
                                                               "--out", str(out)]),
    "train-clean --split": ("split", lambda data, art, out: ["train-clean", str(data), "--split", str(art),
                                                              "--out", str(out), "--set", "purify_epochs=1"]),
}


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("command", COMMANDS)
def test_bad_input_artifact_is_refused(inputs, tmp_path, command, fault):
    kind, args = COMMANDS[command]
    make, needle = FAULTS[fault]
    bad = make(inputs[kind], tmp_path / f"bad_{kind}.h5")
    data = inputs["other"] if fault == "other data" else inputs["data"]
    outdir = tmp_path / "out"
    outdir.mkdir()
    r = runner.invoke(app, [*args(data, bad, outdir / "result.h5"), "--preset", "cpu", "-q", *SETS])
    assert r.exit_code == EXIT_BAD_INPUT, r.output
    assert r.stderr.startswith(f"error: {bad}: "), r.stderr
    assert needle in r.stderr, r.stderr
    assert "Traceback" not in r.output
    assert os.listdir(outdir) == []  # no output, no checkpoint, no temp file


@pytest.mark.parametrize("fault", ["newer schema", "truncated"])
def test_bad_checkpoint_is_refused(inputs, tmp_path, fault):
    """A checkpoint is read back with the same checks, and the message says how to get past it."""
    out = tmp_path / "s.h5"

    class Stop(Exception):
        pass

    def stop(phase, epoch):
        raise Stop

    with pytest.raises(Stop):
        api.split(inputs["data"], out, resolve_config("cpu", OVERRIDES), after_epoch=stop)
    ckpt = api.checkpoint_path(out)
    make, needle = FAULTS[fault]
    make(ckpt.replace(tmp_path / "good.ckpt.h5"), ckpt)
    r = runner.invoke(app, ["split", str(inputs["data"]), "--out", str(out), "--preset", "cpu", "-q", *SETS])
    assert r.exit_code == EXIT_BAD_INPUT, r.output
    assert r.stderr.startswith(f"error: {ckpt}: ") and needle in r.stderr, r.stderr
    assert "Delete it, or pass --no-resume to start over" in r.stderr
    assert not out.exists()
