"""Errors the harness reports to a person in one line (the CLI prints `error: <message>` and exits 2)."""

from __future__ import annotations


class HarnessError(Exception):
    """A problem with the user's input or environment, stated in one line; no traceback is shown."""


class ConfigError(HarnessError):
    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(f"{key}: {message}")
