"""Shared fixtures: configs composed exactly as the CLI composes them, on the smoke preset.

Every composed smoke config pins its precision (`--precision`, fp32 unless asked), so what a test compares does
not depend on the CPU it runs on. Tests marked `numerics` compare numbers that precision changes; CI runs them
once more under `--precision=bf16` (`make test`), so a regression shows on a machine of either kind.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "support"))  # helpers the tests import (wandb_offline, ...)

# Smoke-sized models run fastest on one thread, and two threads contending with anything else on a 2-core
# machine slow small ops down by two orders of magnitude (measured: a 16x16 conv, 0.24 ms vs 32 ms).
# Subprocesses (the CLI tests) inherit the variable.
os.environ["OMP_NUM_THREADS"] = "1"
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--precision", choices=("fp32", "bf16"), default="fp32",
                     help="the precision every smoke config and numerics test runs at (default fp32)")


@pytest.fixture(scope="session")
def precision(request) -> str:
    return request.config.getoption("--precision")


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory) -> Path:
    """One artifact cache for the whole session: smoke artifacts are built once and reused by later tests."""
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture
def smoke_config(session_cache, precision):
    """compose(*overrides) for the smoke preset with the session cache, the pinned precision and wandb off."""
    from harness.cli import compose

    def make(*overrides: str, cache: Path | None = None):
        return compose(["experiment=smoke", f"cache_dir={cache or session_cache}", "logger.mode=disabled",
                        f"precision={precision}", *overrides])

    return make


@pytest.fixture
def smoke_data():
    """make(cfg) -> the context holding the dataset artifact of a composed config, built once per cache."""
    from harness.runtime import pipeline
    from harness.runtime.context import Context

    def make(cfg):
        return pipeline.build(Context.start(cfg), through="data")

    return make
