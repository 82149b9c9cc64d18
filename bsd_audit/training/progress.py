"""Every long step reports progress through this small interface; the CLI draws it (rich bars on a
terminal, plain lines in a log)."""

from __future__ import annotations


class Progress:
    """No-op progress (library use, tests, --quiet)."""

    def start(self, stage: str, total: int) -> None:
        pass

    def advance(self, n: int = 1, note: str = "") -> None:
        pass

    def log(self, message: str) -> None:
        pass

    def finish(self) -> None:
        pass
