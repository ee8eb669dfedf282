"""Where a run's numbers came from: the code's commit, the package versions, the CPU and GPU, the threads and the
date. Numbers and verdicts move with the CPU kind (bf16 units or not) and the torch version, so every run's
summary.json records them, and the report's setup table shows them. They describe the run that wrote the report:
artifacts it reused from the cache (named by their keys in summary.json) may have been built by an earlier one."""

from __future__ import annotations

import datetime
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

PACKAGES = ("torch", "numpy", "open_clip_torch", "diffusers", "datasets", "hydra-core", "wandb")
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")  # the units that change fp32 and bf16 speed and rounding


def provenance() -> dict[str, Any]:
    return {"git_commit": _git("rev-parse", "HEAD"), "git_dirty": _dirty(), "packages": _packages(),
            "cpu": _cpu(), "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "threads": torch.get_num_threads(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def _git(*args: str) -> str | None:
    """A git command's output in the package's checkout; None for an installed copy or without git."""
    try:
        done = subprocess.run(["git", *args], cwd=Path(__file__).resolve().parent, capture_output=True, text=True,
                              timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def _dirty() -> bool | None:
    """Whether the checkout has changes to tracked files beside its commit (None: not a checkout)."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return None if status is None else bool(status)


def _packages() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _cpu() -> dict[str, Any]:
    """The CPU's model and the flags among `CPU_FLAGS` it has (Linux's /proc/cpuinfo; the platform's words
    elsewhere)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {"model": platform.processor() or platform.machine(), "flags": None}
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                 platform.machine())
    flags = next((set(line.split(":", 1)[1].split()) for line in info.splitlines() if line.startswith("flags")),
                 set())
    return {"model": model, "flags": [flag for flag in CPU_FLAGS if flag in flags]}


def describe(record: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) rows of a provenance record for the report's setup table."""
    commit = record.get("git_commit")
    code = "not a git checkout" if commit is None else commit[:12] + (" (uncommitted changes)"
                                                                     if record.get("git_dirty") else "")
    cpu = record.get("cpu") or {}
    flags = cpu.get("flags")
    units = "" if flags is None else f" ({', '.join(flags)})" if flags else f" (none of {', '.join(CPU_FLAGS)})"
    packages = ", ".join(f"{name} {version}" for name, version in (record.get("packages") or {}).items() if version)
    return [("code", code), ("CPU", f"{cpu.get('model', 'unknown')}{units}"), ("GPU", record.get("gpu") or "none"),
            ("threads", str(record.get("threads"))), ("packages", packages or "unknown"),
            ("run at", str(record.get("date")))]
