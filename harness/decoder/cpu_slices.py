"""A CPU's inference in slices of the batch: the memory-bound GroupNorm, SiLU and skip concatenations of the UNet
then work in cache. Each row's output, and what `harness.decoder.attention_record` records, is that of one pass
up to rounding (bit for bit for the sweep's batches on the development CPU)."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from harness.conditioning.condition import Condition

# On a CPU, inference runs in slices of this many pixel positions (144 images at 16 px, 36 at 32 px), so that
# the memory-bound GroupNorm, SiLU and concatenations work in cache. Two processes side by side on the 2-core
# AMD EPYC with AVX512-BF16 (1 MiB of L2 per core), the tiny UNet's forward of 864 rows at 16 px took 655 ms
# in slices of 144 against 760 ms in one pass, and of 216 rows at 32 px 561 ms in slices of 36 against 691 ms;
# slices of half or twice the size did no better. Training steps (64 images) are small enough already, and a
# GPU wants the whole batch.
CPU_SLICE_PIXELS = 144 * 16 * 16


def in_cpu_slices(forward: Callable[[torch.Tensor, torch.Tensor, Condition], torch.Tensor], model: nn.Module,
                  x: torch.Tensor, t: torch.Tensor, cond: Condition) -> torch.Tensor:
    """forward(x, t, cond) in slices of `CPU_SLICE_PIXELS` pixel positions on a CPU without gradients; in one pass
    otherwise (training, a GPU, a batch that fits). Recorders of `model`'s attention layers follow the slices."""
    rows = max(1, CPU_SLICE_PIXELS // (x.shape[-2] * x.shape[-1]))
    if torch.is_grad_enabled() or x.device.type != "cpu" or len(x) <= rows:
        return forward(x, t, cond)
    recorders = {layer.recording[0] for layer in model.modules() if getattr(layer, "recording", None) is not None}
    out = []
    try:
        for start in range(0, len(x), rows):
            part = slice(start, start + rows)
            for recorder in recorders:
                recorder.offset = start
            out.append(forward(x[part], t[part], cond.rows(part)))
    finally:
        for recorder in recorders:
            recorder.offset = 0
    return torch.cat(out)
