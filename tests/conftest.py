"""Shared fixtures: configs composed exactly as the CLI composes them, on the smoke preset."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Smoke-sized models run fastest on one thread, and two threads contending with anything else on a 2-core
# machine slow small ops down by two orders of magnitude (measured: a 16x16 conv, 0.24 ms vs 32 ms).
# Subprocesses (the CLI tests) inherit the variable.
os.environ["OMP_NUM_THREADS"] = "1"
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


@pytest.fixture
def smoke_data():
    """make(cfg) -> (cache, data artifact): the dataset stage of a composed config, built once per cache."""
    from harness.cache import ArtifactCache
    from harness.data import build as data_stage

    def make(cfg):
        cache = ArtifactCache(cfg.cache_dir)
        return cache, data_stage.run(cfg.data, cache)

    return make
