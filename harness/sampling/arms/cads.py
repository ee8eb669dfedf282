"""`cads`: condition-annealed noise at sampling time (Sadat et al., ICLR 2024).

At each step the conditional branches read y' = sqrt(gamma) * y + s * sqrt(1 - gamma) * n, fresh n each step,
then y' is rescaled to y's own mean and standard deviation and mixed back, psi * rescaled + (1 - psi) * y'.
gamma(t) anneals the noise away along the trajectory: 0 (all noise) for t >= tau2, 1 (none) for t <= tau1,
linear in between, with t the step's place in the forward process (1 is pure noise). It acts on the
`Condition` the decoder reads (the vector added to the timestep embedding and the attention tokens), so it
applies to every mode; the null branch stays clean. For a mode that samples from the prior it starts from one
fixed draw per prompt: the question is whether noise alone can replace fresh draws.

The paper's embeddings have a scale of their own; ours are learned projections of any scale, so n is drawn in
units of each condition's own standard deviation (per sample), which makes s mean the same in every mode.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from harness.sampling.arms.base import FIXED, Guidance, SamplingArm, generator, register_arm
from harness.conditioning.condition import Condition
from harness.decoder.diffusion import ModelFn, guided


@dataclass(frozen=True)
class Params:
    tau1: float = 0.6
    tau2: float = 0.9
    noise_scale: float = 0.25  # s
    psi: float = 1.0  # how much of the rescaled condition is mixed back

    def __post_init__(self) -> None:
        if not 0 <= self.tau1 < self.tau2 <= 1:
            raise ValueError(f"tau1: need 0 <= tau1 < tau2 <= 1, got tau1 {self.tau1}, tau2 {self.tau2}")
        if self.noise_scale < 0:
            raise ValueError("noise_scale: must be >= 0")
        if not 0 <= self.psi <= 1:
            raise ValueError("psi: must lie in [0, 1]")


def gamma(fraction: float, tau1: float, tau2: float) -> float:
    """The share of the clean condition at forward-process fraction t: 1 below tau1, 0 above tau2, linear between."""
    if fraction <= tau1:
        return 1.0
    if fraction >= tau2:
        return 0.0
    return (tau2 - fraction) / (tau2 - tau1)


def anneal(y: torch.Tensor, g: float, params: Params, gen: torch.Generator) -> torch.Tensor:
    """y' for one condition tensor [B, ...] at gamma g, rescaled and mixed back."""
    dims = tuple(range(1, y.dim()))
    mean, std = y.mean(dim=dims, keepdim=True), y.std(dim=dims, keepdim=True)
    noise = torch.randn(y.shape, generator=gen, dtype=torch.float32).to(y.device, y.dtype)
    noisy = g ** 0.5 * y + params.noise_scale * (1 - g) ** 0.5 * std * noise
    if params.psi == 0:
        return noisy
    rescaled = (noisy - noisy.mean(dim=dims, keepdim=True)) / noisy.std(dim=dims, keepdim=True).clamp_min(1e-12)
    rescaled = rescaled * std + mean
    return params.psi * rescaled + (1 - params.psi) * noisy


@register_arm("cads")
class Cads(SamplingArm):
    Params = Params
    draws = FIXED

    def model_fn(self, model, guidance: Guidance) -> ModelFn:
        branches, weights = guidance.branches, guidance.weights
        plain = guided(model, branches, weights)
        if self.params.noise_scale == 0:  # no noise: exactly the plain condition at every step
            return plain
        gen = generator(guidance.seed)
        p = self.params

        def model_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            g = gamma(guidance.levels.fraction(int(torch.as_tensor(t).reshape(-1)[0])), p.tau1, p.tau2)
            if g >= 1:
                return plain(x_t, t)
            noisy = [_noised(c, g, p, gen) for c in branches[:-1]] + branches[-1:]  # the null branch stays clean
            return guided(model, noisy, weights)(x_t, t)

        return model_fn


def _noised(cond: Condition, g: float, params: Params, gen: torch.Generator) -> Condition:
    return replace(cond, vector=None if cond.vector is None else anneal(cond.vector, g, params, gen),
                   tokens=None if cond.tokens is None else anneal(cond.tokens, g, params, gen))
