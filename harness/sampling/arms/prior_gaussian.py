"""`prior_gaussian`: per caption, the mean of the prior's draws plus Gaussian noise with their covariance.

The same location and second moment as the prior's draws, none of their multimodal structure: if a decoder keeps
as much diversity at equal fidelity under this as under fresh prior draws, the draws' structure is not what keeps
it. `noise_scale` multiplies the spread (x0.25 to x4 traces a curve); the spread is matched where the decoder
reads the vector (`harness.sampling.arms._spread`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, ClassVar

import torch

from harness.sampling.arms._spread import around, covariance_factor
from harness.sampling.arms.base import OnPriorDraws, VectorInputs, generator, register_arm
from harness.seeds import derived_seed


@dataclass(frozen=True)
class Params:
    # Prior draws per caption that give its mean and covariance: more than the CLIP width (64 in the presets), so
    # the covariance has full rank and the Gaussian spreads along every direction the draws can.
    reference_draws: int = 128
    noise_scale: float = 1.0  # the spread, in units of the prior draws' own (0: the mean alone)
    renormalise: bool = True  # back onto the unit sphere, where the decoder's training vectors lie

    def __post_init__(self) -> None:
        if self.reference_draws < 2:
            raise ValueError("reference_draws: must be at least 2 (a covariance needs two draws)")
        if self.noise_scale < 0:
            raise ValueError("noise_scale: must be at least 0")


@register_arm("prior_gaussian")
class PriorGaussian(OnPriorDraws):
    Params = Params
    # The noise's covariance factor from the reference draws [P, m, D] (`_spread`): theirs, here.
    factor: ClassVar[Callable[[torch.Tensor], torch.Tensor]] = staticmethod(covariance_factor)

    def perturb(self, vectors: VectorInputs) -> VectorInputs:
        # The reference draws are the chunk's (shared by every control); the noise is this module's, the same at
        # every noise scale, so a control's curve over its scale is paired point to point.
        draws = vectors.reference(self.params.reference_draws).float()
        gen = generator(derived_seed(vectors.chunk_seed, f"noise:{self.module_name}"))
        image = around(draws.mean(dim=1), type(self).factor(draws), draws, vectors.text.shape[1], gen,
                       self.params.noise_scale, vectors.reads, self.params.renormalise)
        return replace(vectors, image=image.to(vectors.text))
