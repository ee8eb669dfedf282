"""`prior_guidance`: fresh prior draws per sample, drawn at another classifier-free guidance scale of the prior.

The prior's own guidance is a second axis beside the decoder's (prior guidance x decoder guidance): a stronger
one pulls the draws toward the caption and narrows them. Needs a prior trained with an unconditional branch
(`prior.p_uncond` > 0); the draws come from the chunk's stream, paired with `per_sample` at every decoder scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from harness.sampling.arms.base import ChunkDrawer, OnPriorDraws, register_arm


@dataclass(frozen=True)
class Params:
    scale: float = 3.0  # the prior's guidance scale (1: its conditional prediction alone)

    def __post_init__(self) -> None:
        if self.scale < 0:
            raise ValueError("scale: must be at least 0")


@register_arm("prior_guidance")
class PriorGuidance(OnPriorDraws):
    Params = Params

    @classmethod
    def prior_problem(cls, prior: Any) -> str:
        if prior.kind != "diffusion":
            return f"guides a diffusion prior; prior={prior.kind} has no guidance"
        return "" if prior.p_uncond > 0 else "needs a prior trained with an unconditional branch (prior.p_uncond > 0)"

    def draw(self, draws: ChunkDrawer, text: torch.Tensor, k: int) -> torch.Tensor:
        return draws(k, guidance=self.params.scale)
