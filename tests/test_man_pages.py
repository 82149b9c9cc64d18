"""man/ holds a page per command, generated from the CLI's own definitions and kept up to date."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import typer

from bsd_audit.cli import app
from bsd_audit.manpage import render_all

MAN = Path(__file__).resolve().parent.parent / "man"


def test_every_command_has_a_page():
    commands = typer.main.get_command(app).commands
    assert {f"bsd-audit-{name}.1" for name in commands} | {"bsd-audit.1"} == {p.name for p in MAN.glob("*.1")}


def test_pages_are_up_to_date():
    for name, text in render_all().items():
        assert (MAN / name).read_text(encoding="utf-8") == text, f"man/{name} is stale: run python scripts/make_man.py"


def test_page_documents_options_and_exit_codes():
    page = render_all()["bsd-audit-split.1"]
    for needle in ("\\-\\-target\\-from", "\\-\\-truth", "\\-\\-json", ".SH EXIT STATUS", "bad input"):
        assert needle in page


@pytest.mark.skipif(shutil.which("man") is None, reason="man is not installed")
def test_page_renders_with_man():
    out = subprocess.run(["man", "-l", str(MAN / "bsd-audit-split.1")], capture_output=True, text=True,
                         env={"MANPAGER": "cat", "PAGER": "cat", "MANWIDTH": "100", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert "bsd-audit split" in out.stdout and "--target-from" in out.stdout
