"""Noise process, samplers, paired noise and classifier-free guidance, on top of diffusers' schedulers.

A "model_fn" here is `model_fn(x_t [B, C, H, W], t [B]) -> prediction [B, C, H, W]` (noise or velocity, as
the scheduler's `prediction_type` says). `guided` turns a conditional model `model(x, t, cond)` plus guidance
branches into such a function, so training, sampling and the guidance sweep share one calling convention.
"""

from __future__ import annotations

import inspect
import math
from typing import Callable, Sequence

import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.training_utils import compute_snr

from harness.conditioning.condition import Condition
from harness.runtime.device import autocast
from harness.runtime.progress import bar as progress_bar
from harness.seeds import stream_seed

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
ConditionalModel = Callable[[torch.Tensor, torch.Tensor, Condition], torch.Tensor]
Indices = torch.Tensor | Sequence[int]

PREDICTION_TYPES = ("epsilon", "v_prediction")

# Sampler name -> (diffusers class, config overrides on top of the training scheduler's config).
SAMPLERS: dict[str, tuple[type[SchedulerMixin], dict]] = {
    "ddpm": (DDPMScheduler, {}),
    "ddim": (DDIMScheduler, {}),
    # Thresholding clamps its data (x0) predictions to the pixel range, as clip_sample does for DDPM/DDIM: at
    # t = T-1 of the cosine schedule sqrt(alpha_bar) is 5e-5, and an unclamped x0 = (x - sigma * eps) / alpha
    # amplified every error there by 2e4 (measured: 99.8% saturated pixels after 15 steps without it).
    "dpmpp": (DPMSolverMultistepScheduler, dict(algorithm_type="dpmsolver++", solver_order=2, thresholding=True,
                                               sample_max_value=1.0)),
    # UniPC matched DPM-Solver++ 15 steps with 10 at guidance 3 (attribute accuracy -0.000 [-0.003, +0.002]) but
    # not at 8: -0.027 [-0.038, -0.016] against 40 DPM-Solver++ steps, where 15 DPM-Solver++ steps lose 0.005.
    "unipc": (UniPCMultistepScheduler, dict(solver_order=2, predict_x0=True, thresholding=True, sample_max_value=1.0)),
}

# Independent random streams per (seed, prompt, sample): one for the starting noise, one for the noise that
# stochastic samplers add at each step.
_INITIAL_NOISE, _STEP_NOISE = 0, 1


#################################################################################
#                              Training                                         #
#################################################################################

def make_train_scheduler(num_train_timesteps: int = 1000, beta_schedule: str = "linear",
                         prediction_type: str = "epsilon") -> DDPMScheduler:
    """The forward (noising) process; beta_schedule is a diffusers name ("linear", "squaredcos_cap_v2", ...)."""
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"unknown prediction_type {prediction_type!r}; choose from {PREDICTION_TYPES}")
    # clip_sample (the default) keeps predicted x0 inside the [-1, 1] pixel range while sampling.
    return DDPMScheduler(num_train_timesteps=num_train_timesteps, beta_schedule=beta_schedule,
                         prediction_type=prediction_type, clip_sample=True)


def diffusion_loss(model_fn: ModelFn, x0: torch.Tensor, scheduler: DDPMScheduler,
                   generator: torch.Generator | None = None, min_snr_gamma: float = 0.0) -> torch.Tensor:
    """MSE between the model's prediction and the true noise (or velocity) at a uniformly drawn timestep.

    With `min_snr_gamma` > 0 each sample's error is weighted so that its x0-space weight is min(SNR, gamma)
    (Min-SNR, Hang et al. 2023): the nearly clean timesteps, where the prediction only polishes pixels, stop
    dominating the gradient, and the noisy ones, where shape and colour are decided, get their share.
    """
    rand_device = generator.device if generator is not None else x0.device
    t = torch.randint(0, scheduler.config.num_train_timesteps, (x0.shape[0],), generator=generator,
                      device=rand_device).to(x0.device)
    noise = torch.randn(x0.shape, generator=generator, device=rand_device, dtype=x0.dtype).to(x0.device)
    x_t = scheduler.add_noise(x0, noise, t)
    prediction_type = scheduler.config.prediction_type
    if prediction_type == "epsilon":
        target = noise
    elif prediction_type == "v_prediction":
        target = scheduler.get_velocity(x0, noise, t)
    else:
        raise ValueError(f"unsupported prediction_type {prediction_type!r}")
    errors = (model_fn(x_t, t).float() - target.float()).square().mean(dim=(1, 2, 3))
    if min_snr_gamma > 0:
        snr = compute_snr(scheduler, t)
        # An epsilon (velocity) error is an x0 error scaled by 1/SNR (1/(SNR+1)): divide that back out.
        errors = errors * snr.clamp(max=min_snr_gamma) / (snr if prediction_type == "epsilon" else snr + 1)
    return errors.mean()


class NoiseLevels:
    """The training schedule seen from a sampling step: how noisy x_t is at timestep t, and the conversions
    between the model's prediction (noise or velocity) and its clean-image (x0) estimate, which guidance
    variants that act in image space need."""

    def __init__(self, scheduler: DDPMScheduler) -> None:
        self.alphas_cumprod = scheduler.alphas_cumprod.double()
        self.num_train_timesteps = scheduler.config.num_train_timesteps
        self.prediction = scheduler.config.prediction_type

    def _alpha_sigma(self, t: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.alphas_cumprod[torch.as_tensor(t).long().cpu()].to(like.device, torch.float32)
        shape = (-1,) + (1,) * (like.dim() - 1)
        return a.sqrt().reshape(shape), (1 - a).sqrt().reshape(shape)

    def sigma(self, t: int) -> float:
        """The noise-to-signal ratio sqrt((1 - alpha_bar) / alpha_bar): EDM's sigma of this timestep."""
        a = float(self.alphas_cumprod[int(t)])
        return math.sqrt((1 - a) / a)

    def fraction(self, t: int) -> float:
        """How far along the forward process timestep t is: 0 clean, 1 pure noise."""
        return float(t) / self.num_train_timesteps

    def to_x0(self, prediction: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        alpha, sigma = self._alpha_sigma(t, x_t)
        if self.prediction == "v_prediction":
            return alpha * x_t - sigma * prediction
        return (x_t - sigma * prediction) / alpha

    def from_x0(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        alpha, sigma = self._alpha_sigma(t, x_t)
        if self.prediction == "v_prediction":
            return (alpha * x_t - x0) / sigma
        return (x_t - alpha * x0) / sigma


#################################################################################
#                              Samplers                                         #
#################################################################################

def make_sampler(name: str, train_scheduler: DDPMScheduler, steps: int) -> SchedulerMixin:
    """A diffusers sampler sharing the training noise schedule and prediction type, set to `steps` steps."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose from {sorted(SAMPLERS)}")
    cls, overrides = SAMPLERS[name]
    # "trailing" spacing makes the first step t = T-1, where the starting noise really is pure noise; the
    # default "leading" spacing starts e.g. at t=900 of 1000 with 10 steps, a mismatch that shows at few steps.
    sampler = cls.from_config(train_scheduler.config, timestep_spacing="trailing", **overrides)
    sampler.set_timesteps(steps)
    return sampler


def sample(model_fn: ModelFn, noise: torch.Tensor, sampler: SchedulerMixin,
           generators: list[torch.Generator] | None = None, progress: bool = False,
           precision: str = "auto") -> torch.Tensor:
    """Run the sampler from `noise` to x0 in [-1, 1].

    `generators` (one per sample, see `step_generators`) drive the noise stochastic samplers add each step.
    The model runs under bf16 autocast where it pays (`harness.runtime.device.autocast`); the sampler's update
    stays in fp32.
    """
    # Re-setting the timesteps also clears multistep state (DPM-Solver's history), so a sampler can be reused.
    sampler.set_timesteps(sampler.num_inference_steps, device=noise.device)
    x = noise * sampler.init_noise_sigma
    # Deterministic samplers such as UniPC take no generator.
    noise_kwargs = {"generator": generators} if "generator" in inspect.signature(sampler.step).parameters else {}
    with torch.no_grad():
        for t in progress_bar(sampler.timesteps, desc="sampling", enabled=progress):
            with autocast(noise.device, precision):
                pred = model_fn(sampler.scale_model_input(x, t), t.expand(x.shape[0]))
            x = sampler.step(pred.to(x.dtype), t, x, **noise_kwargs).prev_sample
    return x.clamp(-1.0, 1.0)


#################################################################################
#                              Paired noise                                     #
#################################################################################

def _generator(seed: int, prompt: int, sample: int, stream: int) -> torch.Generator:
    return torch.Generator().manual_seed(stream_seed(seed, prompt, sample, stream, bits=64))


def _pairs(prompt_index: Indices, sample_index: Indices) -> list[tuple[int, int]]:
    prompts = torch.as_tensor(prompt_index).reshape(-1).tolist()
    samples = torch.as_tensor(sample_index).reshape(-1).tolist()
    if len(prompts) != len(samples):
        raise ValueError(f"{len(prompts)} prompt indices but {len(samples)} sample indices")
    return list(zip(prompts, samples))


def paired_noise(seed: int, prompt_index: Indices, sample_index: Indices, shape: tuple[int, ...],
                 device: torch.device | str | None = None) -> torch.Tensor:
    """Starting noise [B, *shape] (shape is one sample's, e.g. (3, 16, 16)) for samples (prompt i, sample j).

    Row b depends only on (seed, prompt_index[b], sample_index[b]): every mode and guidance scale, in any
    batch composition, starts sample j of prompt i from the same noise. Drawn on the CPU so that it is
    also the same on every device.
    """
    rows = [torch.randn(shape, generator=_generator(seed, i, j, _INITIAL_NOISE))
            for i, j in _pairs(prompt_index, sample_index)]
    return torch.stack(rows).to(device)


def step_generators(seed: int, prompt_index: Indices, sample_index: Indices) -> list[torch.Generator]:
    """One CPU generator per sample for the per-step noise of stochastic samplers (DDPM), pass to `sample`.

    With these the whole trajectory of a sample depends only on (seed, i, j), not on its batch neighbours.
    """
    return [_generator(seed, i, j, _STEP_NOISE) for i, j in _pairs(prompt_index, sample_index)]


#################################################################################
#                        Classifier-free guidance                               #
#################################################################################

def guided(model: ConditionalModel, branches: list[Condition], weights: list[float]) -> ModelFn:
    """A model_fn returning sum_k weights[k] * model(x_t, t, branches[k]), all branches in one forward.

    Each branch is a Condition with the batch size of x_t. Branches with weight exactly 0 are not computed
    (they would contribute 0 * pred = 0 anyway), so scale 1 or 0 costs one forward and returns exactly the
    conditional or unconditional prediction. See `harness.conditioning.base.guidance_weights` for the joint and
    separate-scale forms.
    """
    if len(branches) != len(weights):
        raise ValueError(f"{len(branches)} branches but {len(weights)} weights")
    active = [(cond, w) for cond, w in zip(branches, weights) if w != 0]
    if not active:
        raise ValueError("every guidance weight is zero")
    cond = Condition.cat([c for c, _ in active])  # built once, reused at every step
    active_weights = [w for _, w in active]
    k = len(active_weights)

    def model_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, device=x_t.device).expand(x_t.shape[0])
        preds = model(x_t.repeat(k, 1, 1, 1), t.repeat(k), cond).chunk(k)
        return sum(w * p for w, p in zip(active_weights, preds))

    return model_fn
