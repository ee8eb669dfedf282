"""The `mean_shift` baseline: close the average CLIP modality gap, then renormalise.

Paired CLIP text and image vectors sit in two offset cones; adding the mean (image - text) difference of the
training pairs moves a text vector into the image cone. It is the cheapest answer to the mismatch that
motivates unCLIP's prior (DALL-E 2 / unCLIP, Ramesh et al. 2022, section 2.2).
"""

from __future__ import annotations

import torch

from harness.priors.base import ClosedFormPrior


class MeanShiftPrior(ClosedFormPrior):
    """image ~ normalise(text + mean(image - text)); the gap is a buffer so it travels with `state_dict`."""

    def __init__(self, dim: int, vocab_size: int, context_length: int) -> None:
        super().__init__(dim, vocab_size, context_length)
        self.register_buffer("gap", torch.zeros(dim))

    def fit_statistics(self, text_vectors: torch.Tensor,
                       image_vectors: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"gap": (image_vectors - text_vectors).mean(dim=0)}

    def predict(self, text_vectors: torch.Tensor) -> torch.Tensor:
        return text_vectors + self.gap
