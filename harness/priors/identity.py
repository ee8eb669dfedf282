"""The `identity` baseline: use the CLIP text vector itself as the image vector.

The floor every prior must beat. CLIP's contrastive loss aligns paired text and image vectors only up to a
"modality gap", so the text vector is a biased stand-in for the image vector that unCLIP's decoder was
trained on (DALL-E 2 / unCLIP, Ramesh et al. 2022, section 2.2, motivates a prior by exactly this mismatch).
"""

from __future__ import annotations

import torch

from harness.priors.base import ClosedFormPrior


class IdentityPrior(ClosedFormPrior):
    """Text vector in, the same vector out; nothing to fit."""

    def fit_statistics(self, text_vectors: torch.Tensor,
                       image_vectors: torch.Tensor) -> dict[str, torch.Tensor]:
        return {}

    def predict(self, text_vectors: torch.Tensor) -> torch.Tensor:
        return text_vectors
