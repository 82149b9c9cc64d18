"""Man pages generated from the CLI's own definitions, so `--help` and `man` never drift apart.

`python scripts/make_man.py` writes man/bsd-audit.1 and one page per command; a test checks that the
committed pages equal what this module renders now.
"""

from __future__ import annotations

import typer

from . import __version__
from .cli import EXIT_CODES_HELP, app


def _esc(text: str) -> str:
    """Escape text for roff: backslashes, and a leading dot or quote that roff would read as a request."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join(("\\&" + line) if line.startswith((".", "'")) else line for line in text.splitlines())


# Typer builds click-style command objects; they are read by attribute (duck typing), so this module
# does not depend on which click (installed or vendored by Typer) is behind them.
def _is_argument(p) -> bool:
    return p.param_type_name == "argument"


def _param_heading(p) -> str:
    if _is_argument(p):
        return f".B {_esc(p.name.upper())}"
    names = ", ".join(p.opts + p.secondary_opts)
    meta = "" if getattr(p, "is_flag", False) else " " + (p.metavar or p.name.upper())
    return f".B {_esc(names)}{_esc(meta)}"


def _param_help(p) -> str:
    text = getattr(p, "help", None) or ""
    default = p.default
    if default not in (None, False, (), []) and not callable(default) and not getattr(p, "is_flag", False):
        text += f" (default: {default})"
    return _esc(text.strip() or "-")


def _exit_status() -> list[str]:
    lines = [".SH EXIT STATUS"]
    for part in EXIT_CODES_HELP.removeprefix("Exit codes: ").rstrip(".").split("; "):
        code, _, meaning = part.partition(" ")
        lines += [".TP", f".B {code}", _esc(meaning)]
    return lines


def render_command(name: str, cmd) -> str:
    help_text = (cmd.help or "").strip()
    summary = help_text.split(". ")[0].rstrip(".")
    usage_args = " ".join(p.name.upper() for p in cmd.params if _is_argument(p))
    title = _esc(name.upper())
    lines = [
        f'.TH "BSD\\-AUDIT\\-{title}" 1 "" "bsd-audit {__version__}" "User Commands"',
        ".SH NAME", f"bsd\\-audit\\-{_esc(name)} \\- {_esc(summary)}",
        ".SH SYNOPSIS", f".B bsd\\-audit {_esc(name)}", f"[OPTIONS] {_esc(usage_args)}".rstrip(),
        ".SH DESCRIPTION", _esc(help_text),
    ]
    args = [p for p in cmd.params if _is_argument(p)]
    opts = [p for p in cmd.params if not _is_argument(p)]
    if args:
        lines.append(".SH ARGUMENTS")
        for p in args:
            lines += [".TP", _param_heading(p), _esc(getattr(p, "help", None) or "")]
    if opts:
        lines.append(".SH OPTIONS")
        for p in opts:
            lines += [".TP", _param_heading(p), _param_help(p)]
    lines += _exit_status()
    lines += [".SH SEE ALSO", ".BR bsd\\-audit (1)"]
    return "\n".join(lines) + "\n"


def render_all() -> dict[str, str]:
    """{file name: page text} for the top-level page and every command."""
    group = typer.main.get_command(app)
    pages = {}
    commands = sorted(group.commands.items())
    top = [
        f'.TH "BSD\\-AUDIT" 1 "" "bsd-audit {__version__}" "User Commands"',
        ".SH NAME", "bsd\\-audit \\- audit an image dataset for backdoor poisoning with BSD",
        ".SH SYNOPSIS", ".B bsd\\-audit", "COMMAND [OPTIONS] ARGS",
        ".SH DESCRIPTION", _esc((group.help or "").strip()),
        ".SH COMMANDS",
    ]
    for name, cmd in commands:
        top += [".TP", f".B {_esc(name)}", _esc((cmd.help or "").strip().split(". ")[0].rstrip(".") + ".")]
        pages[f"bsd-audit-{name}.1"] = render_command(name, cmd)
    top += _exit_status()
    top += [".SH SEE ALSO", ", ".join(f".BR bsd\\-audit\\-{_esc(n)} (1)" for n, _ in commands).replace(", ", "\n")]
    pages["bsd-audit.1"] = "\n".join(top) + "\n"
    return pages
