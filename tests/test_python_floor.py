"""The Python version pyproject.toml declares is one the code runs on: vermin reads every module's
syntax and standard-library use and fails when any needs a newer Python than ``requires-python``."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def declared_floor() -> str:
    spec = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    m = re.fullmatch(r">=\s*(3\.\d+)", spec)
    assert m, f"requires-python {spec!r}: expected a plain floor such as '>=3.11'"
    return m.group(1)


def vermin(target: str, *paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "import sys; from vermin.main import main; sys.exit(main())", "--no-tips", "--violations", "--eval-annotations",
                           f"-t={target}-", *map(str, paths)], capture_output=True, text=True)


def test_the_package_runs_on_the_declared_floor():
    r = vermin(declared_floor(), REPO / "bsd_audit")
    assert r.returncode == 0, f"code needs a newer Python than requires-python:\n{r.stdout}{r.stderr}"


def test_the_check_catches_code_newer_than_the_floor(tmp_path):
    (tmp_path / "uses_tomllib.py").write_text("import tomllib\n")
    r = vermin("3.10", tmp_path / "uses_tomllib.py")
    assert r.returncode != 0 and "tomllib" in r.stdout
