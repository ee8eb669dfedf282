"""The sweep's runner and judge, loaded from the context's artifacts.

The sweep samples its cells in worker processes when `workers` > 1 (`harness.sweep.run`). Loaded models and
closures over them do not cross a process boundary, so a worker receives the context (the artifacts' folders)
and loads the conditioning CLIP, the prior, the evaluator and the decoders it samples by itself.
"""

from __future__ import annotations

import numpy as np
import torch

from harness.context import Context
from harness.data.world import Prompt
from harness.seeds import derived_seed
from harness.sweep import Judge, Sources, SweepRunner


def load_judge(ctx: Context) -> Judge:
    """The evaluator: probe readings and features, evaluation-CLIP embeddings (never the conditioning CLIP)."""
    from harness.clip import encode_images, encode_texts, load_clip
    from harness.evaluator.probe import load_probe

    probe = load_probe(ctx["probe"], ctx.device)
    model, tokenizer = load_clip(ctx["eval_clip"], ctx.device)
    precision = ctx.cfg.precision
    return Judge(read=probe.read, features=probe.features,
                 embed_images=lambda images: encode_images(model, images, precision=precision),
                 embed_texts=lambda captions: encode_texts(model, tokenizer, captions, precision=precision))


def load_runner(ctx: Context, prompts: list[Prompt]) -> SweepRunner:
    """A runner over `prompts` with the context's conditioning CLIP, prior, decoders and judge."""
    from harness.clip import encode_images, encode_texts, load_clip
    from harness.decoder import stage as decoder_stage
    from harness.priors.stage import load_prior

    cfg, device, precision, world = ctx.cfg, ctx.device, ctx.cfg.precision, ctx.world
    clip_model, tokenizer = load_clip(ctx["clip"], device)
    prior = load_prior(ctx["prior"], cfg.prior.kind, device)
    context = decoder_stage.clip_context(ctx["clip"], ctx["embeddings"], device, precision)

    def oracle_vectors(ids: list[int], k: int) -> torch.Tensor:
        """CLIP image vectors of k fresh real images per prompt: what a perfect prior would hand unCLIP."""
        images = np.concatenate([world.references(prompts[i], k, seed=derived_seed(cfg.sweep.seed, f"oracle{i}"))[1]
                                 for i in ids])
        return encode_images(clip_model, images, precision=precision).reshape(len(ids), k, -1).cpu()

    sources = Sources(
        encode_texts=lambda captions: (tokenizer(captions).long(),
                                       encode_texts(clip_model, tokenizer, captions, precision=precision).cpu()),
        prior_sample=lambda text, tokens, n, generator: prior.sample(text.to(device), tokens.to(device), n,
                                                                     generator=generator).cpu(),
        oracle_vectors=oracle_vectors)
    loaders = {key: (lambda m=key[0], a=artifact: decoder_stage.load(a, cfg, m, context, device))
               for key, artifact in ctx.decoders().items()}
    return SweepRunner(cfg, prompts, loaders, sources, load_judge(ctx), world)
