"""The `linear` baseline: ridge regression from CLIP text vectors to CLIP image vectors.

Kandinsky (Razzhigaev et al. 2023) reports that a linear map between the CLIP text and image spaces is a
competitive replacement for unCLIP's diffusion prior (DALL-E 2 / unCLIP, Ramesh et al. 2022, section 2.2);
this is that map, fitted in closed form, with an intercept so the modality gap is absorbed too.
"""

from __future__ import annotations

import torch

from harness.priors.base import ClosedFormPrior


class LinearPrior(ClosedFormPrior):
    """image ~ normalise(text @ weight + bias), weight = argmin |Y - X W|^2 + alpha |W|^2 on centred pairs.

    `alpha` is in units of the Gram matrix X^T X, whose diagonal grows like N / D for unit-norm vectors,
    so the same alpha regularises less as the dataset grows (the usual ridge behaviour).
    """

    def __init__(self, dim: int, vocab_size: int, context_length: int, alpha: float = 1.0) -> None:
        super().__init__(dim, vocab_size, context_length)
        if alpha < 0:
            raise ValueError(f"ridge alpha must be >= 0, got {alpha}")
        self.alpha = alpha
        self.register_buffer("weight", torch.eye(dim))  # identity until fitted: the `identity` prior
        self.register_buffer("bias", torch.zeros(dim))

    def fit_statistics(self, text_vectors: torch.Tensor,
                       image_vectors: torch.Tensor) -> dict[str, torch.Tensor]:
        text_mean, image_mean = text_vectors.mean(dim=0), image_vectors.mean(dim=0)
        x, y = text_vectors - text_mean, image_vectors - image_mean
        # The intercept is left unpenalised by centring; lstsq-free normal equations are fine at D <= 256.
        gram = x.T @ x + self.alpha * torch.eye(self.dim, dtype=x.dtype, device=x.device)
        weight = torch.linalg.solve(gram, x.T @ y)
        return {"weight": weight, "bias": image_mean - text_mean @ weight}

    def predict(self, text_vectors: torch.Tensor) -> torch.Tensor:
        return text_vectors @ self.weight + self.bias
