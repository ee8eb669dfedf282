"""`rerank`: DALL-E 2's practice, `candidates` prior draws per sample with the one closest to the text vector kept.

The diffusion prior's `best_of` does this at one fixed number; this arm makes the number a sampling axis
(1: the prior's raw draws, no selection). Its candidates come from the chunk's own stream, so with `candidates`
equal to the prior's `best_of` it reproduces `per_sample` exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from harness.sampling.arms.base import ChunkDrawer, OnPriorDraws, register_arm


@dataclass(frozen=True)
class Params:
    candidates: int = 4

    def __post_init__(self) -> None:
        if self.candidates < 1:
            raise ValueError("candidates: must be at least 1")


@register_arm("rerank")
class Rerank(OnPriorDraws):
    Params = Params

    @classmethod
    def prior_problem(cls, prior: Any) -> str:
        return "" if prior.kind == "diffusion" else f"ranks draws of a diffusion prior; prior={prior.kind} draws one"

    def draw(self, draws: ChunkDrawer, text: torch.Tensor, k: int) -> torch.Tensor:
        c = self.params.candidates
        candidates = draws(k * c, best_of=1)  # raw draws, sample-major: the layout the prior's own best-of uses
        candidates = candidates.reshape(len(text), k, c, candidates.shape[-1])
        score = (candidates * text.to(candidates)[:, None, None, :]).sum(dim=-1)
        best = score.argmax(dim=-1)[..., None, None].expand(-1, -1, 1, candidates.shape[-1])
        return candidates.gather(2, best).squeeze(2)
