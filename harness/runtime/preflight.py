"""Checks of the files and folders a config names, run by the CLI for every job before any job starts.

The schema (`harness.config`) checks what a config says; these check what it points at: a cache folder that
can be written, a weights file that loads as plain tensors. Each fails in one line naming the key, so a long
run never dies on them after hours of work. (Whether the machine has the device is checked by each job where
it runs: `harness.runtime.device.check_device_available`.)
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
    from harness.clip.pretrained import PretrainedModel, read_state_dict, register

    check_cache_dir(Path(cfg.cache_dir))
    if cfg.data.source == "hf":
        from harness.data.hf_source import check_path

        check_path(cfg.data)
    pretrained = [PretrainedModel.conditioning(cfg.clip)] if cfg.clip.kind == "pretrained" else []
    if cfg.evaluator.clip_weights:
        pretrained.append(PretrainedModel.judge(cfg.evaluator))
    for model in pretrained:
        register(model)
        if model.weights:
            read_state_dict(Path(model.weights).expanduser(), model.key("weights"))
