"""The package's layers hold (commands, API, reports, artifacts, method, training, data, foundations):
import-linter's contracts in pyproject.toml pass, an import that runs up the layers fails them, and
no module imports inside a function (every dependency is visible at the top of its file)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "bsd_audit"


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """lint-imports with the project's contracts, on the package found under ``root``."""
    script = ("import sys; from importlinter.cli import lint_imports; "
              "sys.exit(lint_imports(config_filename=sys.argv[1]))")
    return subprocess.run([sys.executable, "-c", script, str(root / "pyproject.toml")], cwd=root,
                          env={"PYTHONPATH": str(root), "PATH": ""}, capture_output=True, text=True)


def test_the_layer_contracts_hold():
    r = lint_imports(REPO)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 broken" in r.stdout


def test_an_upward_import_breaks_them(tmp_path):
    shutil.copytree(PACKAGE, tmp_path / "bsd_audit", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    als = tmp_path / "bsd_audit" / "method" / "als.py"
    als.write_text(als.read_text() + "\nfrom ..artifacts import split as _upward  # noqa\n")
    r = lint_imports(tmp_path)
    assert r.returncode != 0
    assert "bsd_audit.method.als -> bsd_audit.artifacts.split" in r.stdout


def test_hdf5_is_imported_under_artifacts_only():
    users = {p.relative_to(PACKAGE).parts[0] for p in PACKAGE.rglob("*.py")
             if any(isinstance(n, (ast.Import, ast.ImportFrom)) and "h5py" in ast.unparse(n)
                    for n in ast.walk(ast.parse(p.read_text())))}
    assert users == {"artifacts"}


def test_no_import_inside_a_function():
    found = []
    for p in PACKAGE.rglob("*.py"):
        for fn in ast.walk(ast.parse(p.read_text())):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found += [f"{p.relative_to(REPO)}:{n.lineno}" for n in ast.walk(fn)
                          if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert not found, "imports inside functions: " + ", ".join(found)


def test_the_contracts_name_every_top_level_module():
    contract = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]
    named = {m.strip().removeprefix("bsd_audit.") for layer in contract["layers"] for m in layer.split("|")}
    present = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
               if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()}
    assert present <= named, f"modules outside every layer: {sorted(present - named)}"
