"""Checks of the files and folders a config names, run by the CLI for every job before any job starts.

The schema (`harness.config`) checks what a config says; these check what it points at: a cache folder that
can be written, a weights file that loads as plain tensors. Each fails in one line naming the key, so a long
run never dies on them after hours of work. (Whether the machine has the device is checked by each job where
it runs: `harness.device.check_device_available`.)
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from harness.config import Config
from harness.errors import ConfigError


def check_cache_dir(path: Path) -> None:
    """The cache folder exists or can be made, and a file can be written in it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise ConfigError("cache_dir", f"cannot write to {path} ({exc.strerror or exc})") from None


def check_paths(cfg: Config) -> None:
    """The folders and files `cfg` names (a relative `cache_dir` is taken from the current folder)."""
    check_cache_dir(Path(cfg.cache_dir))
    if cfg.clip.kind == "pretrained":
        from harness.clip.pretrained import check_architecture, read_state_dict

        check_architecture(cfg.clip.architecture)
        if cfg.clip.weights:
            read_state_dict(Path(cfg.clip.weights).expanduser())
