"""Rebuild man/ from the CLI's own definitions: `python scripts/make_man.py`."""

from pathlib import Path

from bsd_audit.manpage import render_all

if __name__ == "__main__":
    out = Path(__file__).resolve().parent.parent / "man"
    out.mkdir(exist_ok=True)
    for old in out.glob("*.1"):
        old.unlink()
    for name, text in render_all().items():
        (out / name).write_text(text, encoding="utf-8")
        print(f"wrote {out / name}")
