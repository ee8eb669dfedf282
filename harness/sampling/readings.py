"""What a cell measures about the CLIP vectors its samples read, per prompt (Q3 and Q6 read these beside the
images' diversity):

- `prior_spread`: the mean pairwise cosine distance between them (the prior's draws per sample, or a vector plus
  noise); NaN where every sample of a prompt reads the same vector;
- `vector_nearest_real`: the mean cosine distance from each to the nearest real image vector (the conditioning
  CLIP's vectors of the training images). CLIP's text and image vectors live apart (the modality gap), so noise
  around a text vector stays far from every image vector; prior draws should sit near some;
- `vector_log_density`: the mean log-density of each under a Gaussian kernel density of the real image vectors
  (bandwidth by Scott's rule): how typical of real images the vectors are.
The last two are NaN for modes that read no CLIP vector.
"""

from __future__ import annotations

import math

import numpy as np
import torch

READINGS = ("prior_spread", "vector_nearest_real", "vector_log_density")


def none_read(prompts: int) -> dict[str, np.ndarray]:
    """The readings of a mode that reads no CLIP vector: NaN for each prompt."""
    return {name: np.full(prompts, np.nan) for name in READINGS}


def vector_readings(vectors: torch.Tensor, real: torch.Tensor | None) -> dict[str, np.ndarray]:
    """Each reading [P] of the vectors [P, K, D] the samples read, against the real image vectors [N, D] (None:
    not known)."""
    out = none_read(vectors.shape[0])
    if varies(vectors):
        out["prior_spread"] = spread(vectors)
    if real is not None:
        out["vector_nearest_real"], out["vector_log_density"] = location(vectors, real)
    return out


def varies(vectors: torch.Tensor) -> bool:
    """Whether the samples of a prompt read different vectors [P, K, D] (prior draws per sample, added noise)."""
    return bool((vectors != vectors[:, :1]).any())


def spread(vectors: torch.Tensor) -> np.ndarray:
    """Per prompt, the mean pairwise cosine distance between the vectors [P, K, D]."""
    v = torch.nn.functional.normalize(vectors.float(), dim=-1)
    sims = v @ v.transpose(1, 2)
    k = v.shape[1]
    off_diagonal = (sims.sum(dim=(1, 2)) - sims.diagonal(dim1=1, dim2=2).sum(-1)) / (k * (k - 1))
    return (1 - off_diagonal).cpu().numpy()


def location(vectors: torch.Tensor, real: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per prompt, (mean cosine distance to the nearest real vector, mean log kernel density) of vectors [P, K, D]
    against real vectors [N, D]."""
    p, k, d = vectors.shape
    flat = torch.nn.functional.normalize(vectors.reshape(p * k, d).double(), dim=-1)
    real = torch.nn.functional.normalize(real.double(), dim=-1)
    nearest = (1 - (flat @ real.T).max(dim=1).values).reshape(p, k).mean(dim=1)
    n = len(real)
    bandwidth = float(real.std(dim=0).mean()) * n ** (-1.0 / (d + 4))  # Scott's rule, one width for every axis
    squared = torch.cdist(flat, real).pow(2)
    log_kernel = torch.logsumexp(-squared / (2 * bandwidth ** 2), dim=1) - math.log(n)
    log_density = log_kernel - d / 2 * math.log(2 * math.pi * bandwidth ** 2)
    return nearest.numpy(), log_density.reshape(p, k).mean(dim=1).numpy()
