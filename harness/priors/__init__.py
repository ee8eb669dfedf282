"""Priors: CLIP text (vector + caption tokens) -> CLIP image vectors, for unCLIP decoders.

DALL-E 2 / unCLIP (Ramesh et al. 2022) drives its decoder with a diffusion prior; `identity`, `mean_shift`
and `linear` (Kandinsky's finding that a linear map is competitive) are the baselines it is measured against.
`build_prior` makes any of them from a config name.
"""

from __future__ import annotations

from harness.priors.base import Prior
from harness.priors.diffusion import DiffusionPrior
from harness.priors.identity import IdentityPrior
from harness.priors.linear import LinearPrior
from harness.priors.mean_shift import MeanShiftPrior
from harness.priors.quality import prior_quality

PRIORS: dict[str, type[Prior]] = {
    "identity": IdentityPrior,
    "mean_shift": MeanShiftPrior,
    "linear": LinearPrior,
    "diffusion": DiffusionPrior,
}


def build_prior(name: str, dim: int, vocab_size: int, context_length: int, **kwargs) -> Prior:
    """The prior registered as `name`; kwargs go to its constructor (e.g. alpha, width, guidance)."""
    if name not in PRIORS:
        raise ValueError(f"unknown prior {name!r}; choices: {sorted(PRIORS)}")
    return PRIORS[name](dim, vocab_size, context_length, **kwargs)


__all__ = ["PRIORS", "Prior", "build_prior", "prior_quality"]
