"""`apg`: adaptive projected guidance (Sadat et al., ICLR 2025).

CFG's update, taken on the clean-image (x0) estimates, is split into the part parallel to the conditional
estimate, which mostly oversaturates, and the orthogonal rest, which carries the content; the parallel part is
weighted by eta (0 drops it). Before the split the update is averaged with negative momentum beta over the
steps (a running sum that pushes away from the previous update) and its norm is capped at r. The paper's r is
for its own latent size; here it is a root-mean-square per value, so the cap means the same at 16 and 32 px:
r = rms_threshold * sqrt(C * H * W). The default 0.09 is the paper's 2.5 over the 768 values of a 16 px image.
Only one joint scale: the two-branch form [cond, null].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.sampling.arms.base import Guidance, SamplingArm, register_arm
from harness.conditioning.condition import Condition
from harness.decoder.diffusion import ModelFn, guided


@dataclass(frozen=True)
class Params:
    eta: float = 0.0
    momentum: float = -0.75
    rms_threshold: float = 0.09  # 0: no cap

    def __post_init__(self) -> None:
        if self.rms_threshold < 0:
            raise ValueError("rms_threshold: must be >= 0")


def projected_update(update: torch.Tensor, conditional: torch.Tensor, eta: float) -> torch.Tensor:
    """The update with its component parallel to `conditional` scaled by eta (per sample)."""
    flat_c = conditional.flatten(1).double()
    unit = flat_c / flat_c.norm(dim=1, keepdim=True).clamp_min(1e-12)
    flat_u = update.flatten(1).double()
    parallel = (flat_u * unit).sum(dim=1, keepdim=True) * unit
    return ((flat_u - parallel) + eta * parallel).to(update.dtype).reshape(update.shape)


@register_arm("apg")
class Apg(SamplingArm):
    Params = Params
    separate_scales = False

    def model_fn(self, model, guidance: Guidance) -> ModelFn:
        branches, weights = guidance.branches, guidance.weights
        if len(branches) != 2:
            raise ValueError("apg takes one joint guidance scale (branches [cond, null])")
        if guidance.scale == 1:  # no guidance to project: the conditional prediction itself
            return guided(model, branches, weights)
        both = Condition.cat(branches)
        levels, p, scale = guidance.levels, self.params, guidance.scale
        state: dict[str, torch.Tensor] = {}

        def model_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            t = torch.as_tensor(t, device=x_t.device).expand(x_t.shape[0])
            cond, null = model(x_t.repeat(2, 1, 1, 1), t.repeat(2), both).float().chunk(2)
            x = x_t.float()
            x0_cond, x0_null = levels.to_x0(cond, x, t), levels.to_x0(null, x, t)
            update = x0_cond - x0_null
            if "average" in state:
                update = update + p.momentum * state["average"]
            state["average"] = update
            if p.rms_threshold > 0:
                cap = p.rms_threshold * update[0].numel() ** 0.5
                norm = update.flatten(1).norm(dim=1).reshape(-1, *([1] * (update.dim() - 1)))
                update = update * torch.clamp(cap / norm.clamp_min(1e-12), max=1.0)
            guided_x0 = x0_cond + (scale - 1) * projected_update(update, x0_cond, p.eta)
            return levels.from_x0(guided_x0, x, t)

        return model_fn
