"""Shared fixtures: configs composed exactly as the CLI composes them, on the smoke preset."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory) -> Path:
    """One artifact cache for the whole session: smoke artifacts are built once and reused by later tests."""
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture
def smoke_config(session_cache):
    """compose(*overrides) for the smoke preset with the session cache and wandb off."""
    from harness.cli import compose

    def make(*overrides: str, cache: Path | None = None):
        return compose(["experiment=smoke", f"cache_dir={cache or session_cache}", "logger.mode=disabled",
                        *overrides])

    return make
