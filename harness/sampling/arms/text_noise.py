"""`text_noise`: the caption's CLIP text vector plus Gaussian noise with the prior's spread, without its knowledge.

For each prompt, `reference_draws` prior draws give the covariance of the prior's image vectors for that caption;
each sample's text vector gets noise with exactly that (sample) covariance (`_spread.covariance_factor`). The
decoder then sees as much randomness in its condition as per-sample prior draws bring, but centred on the text
vector and blind to which image vectors are plausible: if this keeps diversity as well as the prior at the same
fidelity, randomness is enough.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from harness.config import ConditioningConfig
from harness.config.schema import TEXT
from harness.sampling.arms._spread import covariance_factor, noise
from harness.sampling.arms.base import SamplingArm, VectorInputs, generator, register_arm


@dataclass(frozen=True)
class Params:
    reference_draws: int = 32  # prior draws per prompt that estimate its covariance
    renormalise: bool = True  # back onto the unit sphere, where the decoder's training vectors lie

    def __post_init__(self) -> None:
        if self.reference_draws < 2:
            raise ValueError("reference_draws: must be at least 2 (a covariance needs two draws)")


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
        added = noise(covariance_factor(draws), vectors.text.shape[1], gen).to(vectors.text)
        noisy = vectors.text + added
        if self.params.renormalise:
            noisy = torch.nn.functional.normalize(noisy, dim=-1)
        return replace(vectors, text=noisy)
