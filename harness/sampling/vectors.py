"""Where a mode's CLIP vectors come from at sampling time (docs/design.md, section 2).

A mode reads the caption's CLIP text vector, or a CLIP image vector: drawn from the prior (one draw per prompt or
one per sample, as the sampling arm says) or, for the oracle, taken from a real image of the prompt. The arm may
then perturb the vectors (`SamplingArm.perturb`). The sweep asks `sampling_vectors` and never which mode or arm
it samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from harness.clip import encode_images, encode_texts, load_clip
from harness.config import ConditioningConfig
from harness.config.schema import IMAGE
from harness.data.prompts import SweepPrompt, real_images
from harness.priors.stage import load_prior
from harness.runtime.context import Context
from harness.sampling.arms.base import SamplingArm, VectorInputs, generator
from harness.seeds import PRIOR_DRAWS, derived_seed, stream_seed

# text, tokens, n, generator, then the prior's settings to override (best_of, guidance) -> [P, n, D]
PriorSample = Callable[..., torch.Tensor]


@dataclass
class VectorSources:
    """What sampling-time vectors are made from, for every prompt of the sweep."""
    tokens: torch.Tensor  # [P, L] the captions' token ids
    text_vectors: torch.Tensor  # [P, D] their CLIP text vectors
    prior_sample: PriorSample | None
    oracle_vectors: Callable[[list[int], int], torch.Tensor] | None  # prompt ids, k -> [P, k, D]
    kinds: list[str] = field(default_factory=list)  # each prompt's kind
    drawn: dict[tuple, torch.Tensor] = field(default_factory=dict, repr=False)  # (ids, n, seed, settings) -> draws

    def prior_draws(self, ids: list[int], n: int, seed: int, **settings: float | None) -> torch.Tensor:
        """n prior draws [P, n, D] for each prompt of `ids` from the stream `seed`, drawn once and then reused.

        A chunk's stream (`draw_seed`) is the same at every guidance scale and arm, so its cells would draw the
        same vectors again: in the quick preset that was a tenth of the sweep's time. Reusing them changes
        nothing: the draw is a function of (ids, n, seed, settings); `settings` override the prior's own (best_of,
        guidance)."""
        key = (tuple(ids), n, seed, tuple(sorted(settings.items())))
        if key not in self.drawn:
            self.drawn[key] = self.prior_sample(self.text_vectors[ids], self.tokens[ids], n, generator(seed),
                                                **settings)
        return self.drawn[key]


def draw_seed(sweep_seed: int, chunk: int, train_seed: int) -> int:
    """The prior's stream for a chunk of prompts: shared by every guidance scale and arm, so they are paired."""
    return stream_seed(sweep_seed, chunk, train_seed, PRIOR_DRAWS)


def sampling_vectors(mode: ConditioningConfig, arm: SamplingArm, sources: VectorSources, ids: list[int], k: int,
                     seed: int, reads: torch.Tensor | None = None) -> VectorInputs:
    """The vectors [P, K, D] the mode reads for prompts `ids` under `arm`; `seed` is the chunk's `draw_seed`,
    `reads` what the decoder reads from an image vector (`VectorInputs.reads`)."""
    text = sources.text_vectors[ids]
    image = None
    if mode.vector_source == IMAGE:
        if not mode.draws_from_prior:
            image = sources.oracle_vectors(ids, k)
        else:
            image = arm.draw(lambda n, **settings: sources.prior_draws(ids, n, seed, **settings), text, k)

    def prior_draws(n: int, gen: torch.Generator, of: list[int] | None = None) -> torch.Tensor:
        chosen = ids if of is None else of
        return sources.prior_sample(sources.text_vectors[chosen], sources.tokens[chosen], n, gen)

    reference = None if sources.prior_sample is None else (
        lambda n: sources.prior_draws(ids, n, derived_seed(seed, "reference")))
    vectors = VectorInputs(text[:, None].expand(len(ids), k, text.shape[-1]), image,
                           None if sources.prior_sample is None else prior_draws,
                           seed=derived_seed(seed, f"arm:{arm.name}"), reference=reference, chunk_seed=seed,
                           prompt_ids=list(ids), kinds=sources.kinds, reads=reads)
    return arm.perturb(vectors)


def load_sources(ctx: Context, prompts: list[SweepPrompt]) -> VectorSources:
    """The conditioning CLIP's text vectors of `prompts`, the prior, and the oracle's real-image vectors."""
    cfg, device, precision = ctx.cfg, ctx.device, ctx.cfg.precision
    clip_model, tokenizer = load_clip(ctx["clip"], device)
    prior = load_prior(ctx["prior"], cfg.prior.kind, device)
    captions = [p.caption for p in prompts]

    def prior_sample(text: torch.Tensor, tokens: torch.Tensor, n: int, gen: torch.Generator,
                     **settings: float | None) -> torch.Tensor:
        return prior.sample(text.to(device), tokens.to(device), n, generator=gen, **settings).cpu()

    def oracle_vectors(ids: list[int], k: int) -> torch.Tensor:
        """CLIP image vectors of real images of each prompt (k fresh ones on the world; on a dataset the images
        a held-out caption captions, taken in turn): what a perfect prior would hand unCLIP."""
        images = real_images(ctx, prompts, ids, k, lambda i: derived_seed(cfg.sweep.seed, f"oracle{i}"))
        vectors = encode_images(clip_model, images.reshape(-1, *images.shape[2:]), precision=precision)
        vectors = vectors.reshape(len(ids), images.shape[1], -1)
        return vectors[:, torch.arange(k) % images.shape[1]].cpu()

    return VectorSources(tokenizer(captions).long(),
                         encode_texts(clip_model, tokenizer, captions, precision=precision).cpu(),
                         prior_sample, oracle_vectors, [p.kind for p in prompts])
