"""`text_noise`: the caption's CLIP text vector plus Gaussian noise with the prior's spread, without its knowledge.

For each prompt, `reference_draws` prior draws give the covariance of the prior's image vectors for that caption;
each sample's text vector gets noise with exactly that (sample) covariance, n = A^T w / sqrt(m - 1), where A
holds the m draws minus their mean and w ~ N(0, I_m). The decoder then sees as much randomness in its condition
as per-sample prior draws bring, but centred on the text vector and blind to which image vectors are plausible:
if this keeps diversity as well as the prior at the same fidelity, randomness is enough.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from harness.config import ConditioningConfig
from harness.config.schema import TEXT
from harness.sampling.arms.base import SamplingArm, VectorInputs, generator, register_arm


@dataclass(frozen=True)
class Params:
    reference_draws: int = 32  # prior draws per prompt that estimate its covariance
    renormalise: bool = True  # back onto the unit sphere, where the decoder's training vectors lie

    def __post_init__(self) -> None:
        if self.reference_draws < 2:
            raise ValueError("reference_draws: must be at least 2 (a covariance needs two draws)")


def matched_noise(draws: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """[P, k, D] Gaussian noise whose covariance per prompt is the sample covariance of `draws` [P, m, D]."""
    p, m, _ = draws.shape
    centred = (draws - draws.mean(dim=1, keepdim=True)).double()
    weights = torch.randn(p, k, m, generator=gen, dtype=torch.float64)
    return (weights @ centred / (m - 1) ** 0.5).to(draws.dtype)


@register_arm("text_noise")
class TextNoise(SamplingArm):
    Params = Params

    @classmethod
    def applies_to(cls, mode: ConditioningConfig) -> bool:
        return mode.vector_source == TEXT

    def perturb(self, vectors: VectorInputs) -> VectorInputs:
        if vectors.prior_draws is None:
            raise ValueError("text_noise needs the prior's draws for its covariance")
        gen = generator(vectors.seed)
        draws = vectors.prior_draws(self.params.reference_draws, gen).float()
        noisy = vectors.text + matched_noise(draws, vectors.text.shape[1], gen).to(vectors.text.device)
        if self.params.renormalise:
            noisy = torch.nn.functional.normalize(noisy, dim=-1)
        return replace(vectors, text=noisy)
