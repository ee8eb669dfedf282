"""Gaussian noise of the prior's spread, shared by the arms that replace or perturb a mode's CLIP vectors with it
(`text_noise`, `prior_gaussian`, `isotropic`).

Noise is `w @ factor` with w ~ N(0, I): a factor [P, r, D] per prompt gives the covariance factor^T factor. Its
scale is set where the decoder reads the vector: through the linear part R of its conditioning projection, whose
Gram matrix G = R^T R (`VectorInputs.reads`) is all a spread needs (the total variance of R x is trace(G cov x)).
The total variance of what the decoder reads equals `scale`^2 times that of the prior's own draws.
Vectors put back on the unit sphere (where the decoder's training vectors lie) are calibrated on a set of
calibration draws by bisection, since the sphere shrinks the spread; otherwise the match is exact in
expectation.
"""

from __future__ import annotations

import torch

CALIBRATION_DRAWS = 1024  # per prompt: the spread of normalised vectors is matched on this many (about 3% error)


def total_variance(vectors: torch.Tensor, gram: torch.Tensor | None = None) -> torch.Tensor:
    """Per prompt, the total sample variance (n - 1) of vectors [P, n, D], as read through a map with Gram matrix
    `gram` [D, D] (None: the vectors themselves)."""
    centred = (vectors - vectors.mean(dim=1, keepdim=True)).double()
    read = centred if gram is None else centred @ gram.double()
    return (read * centred).sum(dim=(1, 2)) / (vectors.shape[1] - 1)


def covariance_factor(draws: torch.Tensor) -> torch.Tensor:
    """[P, m, D]: w @ factor has the sample covariance of the m draws [P, m, D] of each prompt."""
    return (draws - draws.mean(dim=1, keepdim=True)).double() / (draws.shape[1] - 1) ** 0.5


def isotropic_factor(draws: torch.Tensor) -> torch.Tensor:
    """[P, D, D]: w @ factor is isotropic with the draws' total variance (in the CLIP space)."""
    p, _, d = draws.shape
    sigma = (total_variance(draws) / d).sqrt()
    return sigma[:, None, None] * torch.eye(d, dtype=torch.float64).expand(p, d, d)


def noise(factor: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """[P, k, D] draws of w @ factor."""
    w = torch.randn(factor.shape[0], k, factor.shape[1], generator=gen, dtype=torch.float64)
    return w @ factor


def around(mean: torch.Tensor, factor: torch.Tensor, reference: torch.Tensor, k: int, gen: torch.Generator,
           scale: float, gram: torch.Tensor | None, renormalise: bool) -> torch.Tensor:
    """k vectors per prompt [P, k, D]: `mean` [P, D] plus noise of covariance factor^T factor, scaled so that what
    the decoder reads spreads `scale`^2 times as much as it does from the `reference` draws [P, m, D]. Scale 0
    gives the mean itself (unit-normalised when `renormalise`)."""
    mean, dtype = mean.double(), reference.dtype
    target = scale ** 2 * total_variance(reference, gram)  # [P]
    sampled = noise(factor, k, gen)
    if scale == 0:
        multiplier = torch.zeros(len(mean), dtype=torch.float64)
    elif not renormalise:  # E[total variance of c w @ factor, read] = c^2 trace(G factor^T factor): exact
        read = factor if gram is None else factor @ gram.double()
        spread = (read * factor).sum(dim=(1, 2))
        # Draws without spread (a closed-form prior, a collapsed one) leave nothing to match: the mean alone.
        multiplier = torch.where(spread > 0, (target / spread.clamp_min(1e-300)).sqrt(), torch.zeros_like(spread))
    else:
        multiplier = _calibrate(mean, noise(factor, CALIBRATION_DRAWS, gen), target, gram)
    out = mean[:, None, :] + multiplier[:, None, None] * sampled
    return (torch.nn.functional.normalize(out, dim=-1) if renormalise else out).to(dtype)


def _calibrate(mean: torch.Tensor, calibration: torch.Tensor, target: torch.Tensor,
               gram: torch.Tensor | None) -> torch.Tensor:
    """Per prompt, the multiplier c at which normalise(mean + c noise) spreads `target` where the decoder reads it
    (bisection; the largest tried where the sphere cannot spread that much)."""
    def spread(c: torch.Tensor) -> torch.Tensor:
        vectors = torch.nn.functional.normalize(mean[:, None, :] + c[:, None, None] * calibration, dim=-1)
        return total_variance(vectors, gram)

    low, high = torch.zeros_like(target), torch.ones_like(target)
    for _ in range(20):  # grow until every prompt's target is bracketed (or the sphere's limit is near)
        short = spread(high) < target
        if not short.any():
            break
        high = torch.where(short, high * 2, high)
    for _ in range(30):
        middle = (low + high) / 2
        below = spread(middle) < target
        low, high = torch.where(below, middle, low), torch.where(below, high, middle)
    return (low + high) / 2
