"""Device and precision choices shared by every stage.

bf16 autocast is only a win where the hardware has bf16 matrix units: CUDA, or CPUs with AMX / AVX512-BF16.
On a CPU without them (the 2-core CI machine here measured a 1024x1024 matmul at 0.037 s in bf16 against
0.010 s in fp32) it is several times slower, so `precision=auto` checks the CPU instead of assuming.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Iterator

import torch


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks CUDA when present, else the CPU; anything else is passed to torch."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@functools.lru_cache(maxsize=None)
def cpu_has_fast_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def use_bf16(device: torch.device, precision: str = "auto") -> bool:
    if precision == "bf16":
        return True
    if precision == "fp32":
        return False
    return device.type == "cuda" or (device.type == "cpu" and cpu_has_fast_bf16())


@contextlib.contextmanager
def autocast(device: torch.device, precision: str = "auto") -> Iterator[None]:
    """bf16 autocast where it pays (see module docstring), a no-op otherwise."""
    if use_bf16(device, precision):
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            yield
    else:
        yield
