"""Errors the harness reports to a person in one line (the CLI prints `error: <message>` and exits 2)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path


class HarnessError(Exception):
    """A problem with the user's input or environment, stated in one line; no traceback is shown."""


class ConfigError(HarnessError):
    def __init__(self, key: str, message: str) -> None:
        self.key, self.message = key, message
        super().__init__(f"{key}: {message}")


def print_or_exit(make: Callable[[], Path | str]) -> None:
    """A command-line tool's last step: print what `make()` gives (the path it wrote, or its listing), or its
    `HarnessError` in one line on stderr and exit with status 2."""
    try:
        written = make()
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(written)
