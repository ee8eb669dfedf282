"""Device and precision choices shared by every stage.

`precision=auto` means bf16 autocast on CUDA and fp32 on a CPU. It is not read off a CPU flag: on a 2-core
AMD EPYC with AVX512-BF16 a tiny-UNet training step (one thread, batch 64) ran at 355 images/s in fp32 and 303
in bf16 at 16 px, and on a CPU without bf16 units a 1024x1024 matmul took 0.037 s in bf16 against 0.010 s in
fp32. Ask for `precision=bf16` on a CPU where `benchmarks/decoder_throughput.py` measures it faster.

Artifacts are keyed by the precision that actually ran (`effective_precision`), so `auto` and `fp32` share
them on a CPU and a cache moved between a CPU and a GPU never mixes the two.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from harness.errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks CUDA when present, else the CPU; anything else is passed to torch."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def check_device_available(name: str) -> None:
    """Raise a one-line `ConfigError` when this machine lacks the device (the schema has checked the name).

    Run by each job on the machine that runs it: a login node without a GPU may submit `device=cuda` jobs."""
    device = resolve_device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", f"{name!r}: this machine has no CUDA device; use device=cpu or auto")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError("device", f"{name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")


def use_bf16(device: torch.device, precision: str = "auto") -> bool:
    if precision in ("bf16", "fp32"):
        return precision == "bf16"
    return device.type == "cuda"


def effective_precision(device: str | torch.device, precision: str) -> str:
    """What `precision` means on `device`: "bf16" or "fp32" (for artifact keys and the report)."""
    if isinstance(device, str):
        device = resolve_device(device)
    return "bf16" if use_bf16(device, precision) else "fp32"


@contextlib.contextmanager
def autocast(device: torch.device, precision: str = "auto") -> Iterator[None]:
    """bf16 autocast where it is asked for or the device is a GPU (module docstring), a no-op otherwise."""
    if use_bf16(device, precision):
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            yield
    else:
        yield
