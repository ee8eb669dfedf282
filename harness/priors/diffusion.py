"""The DALL-E 2 diffusion prior (DALL-E 2 / unCLIP, Ramesh et al. 2022, section 2.2).

A decoder-only transformer with a causal mask reads, in order: the caption's token embeddings, the CLIP text
vector, the diffusion timestep, the noised CLIP image vector and a learned query; the output at the query
predicts the clean image vector directly (x0 prediction with an MSE loss, as the paper does, rather than
epsilon). Also from the paper:

- the text condition (tokens and text vector) is dropped 10% of the time during training, replaced here by
  learned null embeddings (a one-token null caption and a null text vector), so classifier-free guidance
  can be used when sampling;
- optionally draw `best_of` image vectors and keep the one with the higher dot product with the text vector
  (the paper uses 2).

Our choice where the paper gives no recipe: vectors are brought to unit variance before diffusion so they
match the scale of the Gaussian noise. Unit-norm vectors in D dimensions have mean-square 1/D per coordinate,
but CLIP vectors of one modality share a common offset (the "modality gap" cone), so each modality's mean and
the RMS of its centred coordinates are fitted on the training pairs and stored as buffers, and we diffuse
(z - mean) / rms. One scalar RMS keeps the geometry isotropic. Before fitting, the buffers hold mean 0 and
rms 1/sqrt(D), i.e. plain sqrt(D) scaling.

Noise process: diffusers' DDPMScheduler (cosine schedule, 1000 steps) for `add_noise` in training and a
DDIMScheduler built from its config for sampling.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler
from diffusers.utils.torch_utils import randn_tensor
from torch import nn

from harness.config import TrainConfig
from harness.runtime.device import autocast, resolve_device
from harness.priors.base import Prior
from harness.training import train

_EXTRA_POSITIONS = 4  # text vector, timestep, noised image vector, query


class DiffusionPrior(Prior):
    """Causal transformer over [tokens, text vector, timestep, noised image vector, query] -> clean image vector.

    width, depth, heads: transformer size. p_uncond: probability of dropping the text condition in training.
    guidance: classifier-free guidance scale at sampling (1 = conditional only, no extra forward).
    best_of: candidates per draw, the one closest to the text vector is kept. sample_steps: DDIM steps.
    precision: passed to `harness.runtime.device.autocast` (`auto`: bf16 on CUDA, fp32 on a CPU).
    """

    def __init__(self, dim: int, vocab_size: int, context_length: int, width: int = 128, depth: int = 4,
                 heads: int = 4, p_uncond: float = 0.1, guidance: float = 1.0, best_of: int = 1,
                 sample_steps: int = 64, num_train_timesteps: int = 1000, precision: str = "auto") -> None:
        super().__init__(dim, vocab_size, context_length)
        if not 0.0 <= p_uncond < 1.0:
            raise ValueError(f"p_uncond must be in [0, 1), got {p_uncond}")
        if best_of < 1 or sample_steps < 1:
            raise ValueError(f"best_of and sample_steps must be >= 1, got {best_of} and {sample_steps}")
        if guidance != 1.0 and p_uncond == 0.0:
            raise ValueError("guidance needs an unconditional branch: train with p_uncond > 0")
        self.heads = heads
        self.p_uncond, self.guidance, self.best_of, self.sample_steps = p_uncond, guidance, best_of, sample_steps
        self.precision = precision

        self.token_embedding = nn.Embedding(vocab_size, width)
        self.text_vector_in = nn.Linear(dim, width)
        self.time_embedding = nn.Embedding(num_train_timesteps, width)
        self.image_in = nn.Linear(dim, width)
        self.query = nn.Parameter(torch.empty(width))
        self.null_token = nn.Parameter(torch.empty(width))
        self.null_text_vector = nn.Parameter(torch.empty(width))
        self.position = nn.Parameter(torch.empty(context_length + _EXTRA_POSITIONS, width))
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.out_norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, dim)

        for modality in ("text", "image"):
            self.register_buffer(f"{modality}_mean", torch.zeros(dim))
            self.register_buffer(f"{modality}_rms", torch.tensor(dim ** -0.5))

        self.noise_schedule = DDPMScheduler(num_train_timesteps=num_train_timesteps,
                                            beta_schedule="squaredcos_cap_v2", prediction_type="sample",
                                            clip_sample=False)  # standardised vectors exceed [-1, 1]
        self.reset_parameters(torch.Generator().manual_seed(0))
        # Outside `fit` a prior is always in eval mode: torch's transformer takes a different (fused) path in
        # eval, and a freshly built prior that loads a state_dict must sample exactly like the one that was fit.
        self.eval()

    # ------------------------------------------------------------------ parameters and normalisation

    def reset_parameters(self, generator: torch.Generator) -> None:
        """GPT-style init from an explicit generator, so `fit` is reproducible from its recipe's seed alone."""
        for module in self.modules():
            if isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
                continue
            for name, param in module.named_parameters(recurse=False):
                if "bias" in name:
                    nn.init.zeros_(param)
                else:
                    nn.init.normal_(param, std=0.02, generator=generator)

    def _standardise(self, vectors: torch.Tensor, modality: str) -> torch.Tensor:
        return (vectors - self.get_buffer(f"{modality}_mean")) / self.get_buffer(f"{modality}_rms")

    def _fit_standardisation(self, vectors: torch.Tensor, modality: str) -> None:
        mean = vectors.mean(dim=0)
        rms = (vectors - mean).pow(2).mean().sqrt().clamp_min(1e-6)  # identical vectors must not divide by 0
        self.get_buffer(f"{modality}_mean").copy_(mean)
        self.get_buffer(f"{modality}_rms").copy_(rms)

    # ------------------------------------------------------------------ the denoiser

    def _caption(self, text_tokens: torch.Tensor,
                 drop: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Token embeddings [B, l, W], their padding [B, l] and position indices [l], for the l <= L columns
        that hold a real token in some row.

        A dropped caption becomes the learned null token at position 0 followed by padding. Columns that are
        padding in every row are cut: padding is hidden from every other position (see `_attention_mask`), so
        the query's output is unchanged, and open_clip's 77-token context is mostly padding for short captions.
        """
        first = torch.arange(text_tokens.shape[1], device=text_tokens.device) == 0
        padding = torch.where(drop[:, None], ~first, text_tokens == 0)
        columns = (~padding).any(dim=0).nonzero().squeeze(1)
        tokens = torch.where(drop[:, None, None], self.null_token, self.token_embedding(text_tokens[:, columns]))
        return tokens, padding[:, columns], columns

    def _attention_mask(self, padding: torch.Tensor) -> torch.Tensor:
        """[B * heads, S, S] bool, True = blocked: causal, and padding tokens hidden from other positions.

        A position may always see itself, so a row never has every key blocked (which would give NaN).
        """
        padding = F.pad(padding, (0, _EXTRA_POSITIONS), value=False)
        length = padding.shape[1]
        causal = torch.ones(length, length, dtype=torch.bool, device=padding.device).triu(1)
        blocked = causal | (padding[:, None, :] & ~torch.eye(length, dtype=torch.bool, device=padding.device))
        return blocked.repeat_interleave(self.heads, dim=0)

    def denoise(self, noised: torch.Tensor, timesteps: torch.Tensor, text_vectors: torch.Tensor,
                text_tokens: torch.Tensor, drop: torch.Tensor) -> torch.Tensor:
        """Predict the clean standardised image vector [B, D] from a noised one; `drop` [B] nulls the caption."""
        if text_tokens.shape[1] != self.context_length:
            raise ValueError(f"expected {self.context_length} caption tokens, got {text_tokens.shape[1]}")
        batch = noised.shape[0]
        with autocast(noised.device, self.precision):
            tokens, padding, columns = self._caption(text_tokens, drop)
            text = torch.where(drop[:, None], self.null_text_vector,
                               self.text_vector_in(self._standardise(text_vectors, "text")))
            sequence = torch.cat([tokens, text[:, None], self.time_embedding(timesteps)[:, None],
                                  self.image_in(noised)[:, None], self.query.expand(batch, 1, -1)], dim=1)
            position = torch.cat([self.position[columns], self.position[self.context_length:]])
            hidden = self.transformer(sequence + position, mask=self._attention_mask(padding))
            return self.out(self.out_norm(hidden[:, -1])).float()

    # ------------------------------------------------------------------ training

    def fit(self, text_vectors: torch.Tensor, text_tokens: torch.Tensor, image_vectors: torch.Tensor,
            recipe: TrainConfig, *, workdir: Path | None = None, progress: bool = True,
            device: str | torch.device = "auto") -> dict[str, float]:
        """The MSE between predicted and true clean image vectors, trained by the shared loop with `recipe`."""
        target = resolve_device(str(device))
        self.cpu().reset_parameters(torch.Generator().manual_seed(recipe.seed))  # CPU init: same weights anywhere
        self.to(target)
        text = text_vectors.to(target, torch.float32)
        tokens = text_tokens.to(target, torch.long)
        image = image_vectors.to(target, torch.float32)
        self._fit_standardisation(text, "text")
        self._fit_standardisation(image, "image")
        clean = self._standardise(image, "image")
        num_timesteps = self.noise_schedule.config.num_train_timesteps

        def fetch(indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            rows = torch.as_tensor(indices, device=target)
            return clean[rows], text[rows], tokens[rows]

        def loss_fn(batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
            x0, text_batch, token_batch = batch
            n, device = len(x0), generator.device
            timesteps = torch.randint(num_timesteps, (n,), generator=generator, device=device).to(target)
            noise = torch.randn(n, self.dim, generator=generator, device=device).to(target)
            drop = (torch.rand(n, generator=generator, device=device) < self.p_uncond).to(target)
            noised = self.noise_schedule.add_noise(x0, noise, timesteps)
            return F.mse_loss(self.denoise(noised, timesteps, text_batch, token_batch, drop), x0)

        result = train(self, loss_fn, fetch, len(clean), recipe, workdir, target, precision=self.precision,
                       desc="prior", progress=progress)
        if result.ema is not None:  # the prior keeps the weights it samples with
            self.load_state_dict(result.final.state_dict())
        return result.summary()

    # ------------------------------------------------------------------ sampling

    @torch.no_grad()
    def sample(self, text_vectors: torch.Tensor, text_tokens: torch.Tensor, n: int = 1,
               generator: torch.Generator | None = None, best_of: int | None = None,
               guidance: float | None = None) -> torch.Tensor:
        """DDIM from noise with classifier-free guidance (at `guidance`) in one batched forward, then best-of
        selection (of `best_of` candidates per draw); the prior's own settings where None."""
        device = self.device
        best_of = self.best_of if best_of is None else best_of
        guidance = self.guidance if guidance is None else guidance
        if guidance != 1.0 and self.p_uncond == 0.0:
            raise ValueError("guidance needs an unconditional branch: this prior was trained with p_uncond = 0")
        batch, draws = text_vectors.shape[0], n * best_of
        text = text_vectors.to(device, torch.float32).repeat_interleave(draws, dim=0)
        tokens = text_tokens.to(device, torch.long).repeat_interleave(draws, dim=0)
        drop = torch.zeros(len(text), dtype=torch.bool, device=device)
        guided = guidance != 1.0
        if guided:  # conditional rows first, unconditional rows second
            text, tokens, drop = torch.cat([text, text]), torch.cat([tokens, tokens]), torch.cat([drop, ~drop])

        scheduler = DDIMScheduler.from_config(self.noise_schedule.config, timestep_spacing="trailing")
        scheduler.set_timesteps(self.sample_steps, device=device)  # "trailing" starts at the last timestep
        noised = randn_tensor((batch * draws, self.dim), generator=generator, device=device, dtype=torch.float32)
        for t in scheduler.timesteps:
            rows = torch.cat([noised, noised]) if guided else noised
            clean = self.denoise(rows, t.expand(len(rows)), text, tokens, drop)
            if guided:
                conditional, unconditional = clean.chunk(2)
                clean = unconditional + guidance * (conditional - unconditional)
            noised = scheduler.step(clean, t, noised).prev_sample

        image = noised * self.image_rms + self.image_mean
        image = F.normalize(image, dim=-1).view(batch, n, best_of, self.dim)
        score = (image * text_vectors.to(device, torch.float32)[:, None, None, :]).sum(dim=-1)
        best = score.argmax(dim=-1)[..., None, None].expand(-1, -1, 1, self.dim)
        return image.gather(2, best).squeeze(2).to(text_vectors.device)
