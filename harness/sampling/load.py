"""The sweep's runner and judge, loaded from the context's artifacts.

The sweep samples its cells in worker processes when `workers` > 1 (`harness.sampling.stage.run`). Loaded models and
closures over them do not cross a process boundary, so a worker receives the context (the artifacts' folders)
and loads the conditioning CLIP, the prior, the evaluator and the decoders it samples by itself.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from harness.clip import encode_images, encode_texts, load_clip, load_embeddings
from harness.data.prompts import SweepPrompt, real_images
from harness.decoder import stage as decoder_stage
from harness.evaluator.probe import load_probe
from harness.runtime.context import Context
from harness.sampling.runner import Judge, Sources, SweepRunner
from harness.sampling.vectors import load_sources

REAL_VECTORS = 4096


def load_judge(ctx: Context) -> Judge:
    """The evaluator, never the conditioning CLIP: the evaluation CLIP's embeddings and, on the shapes world, the
    probe's readings and features (on a dataset the evaluation CLIP's image embeddings are the features)."""
    model, tokenizer = load_clip(ctx["eval_clip"], ctx.device)
    precision = ctx.cfg.precision

    def embed_images(images: np.ndarray) -> torch.Tensor:
        return encode_images(model, images, precision=precision)

    def embed_texts(captions: list[str]) -> torch.Tensor:
        return encode_texts(model, tokenizer, captions, precision=precision)

    if "probe" not in ctx:
        return Judge(read=None, features=embed_images, embed_images=embed_images, embed_texts=embed_texts)
    probe = load_probe(ctx["probe"], ctx.device)
    return Judge(read=probe.read, features=probe.features, embed_images=embed_images, embed_texts=embed_texts)


def load_runner(ctx: Context, prompts: list[SweepPrompt]) -> SweepRunner:
    """A runner over `prompts` with the context's vector sources (conditioning CLIP, prior, oracle), decoders and
    judge."""
    cfg, device = ctx.cfg, ctx.device
    context = decoder_stage.clip_context(ctx["clip"], ctx["embeddings"], device, cfg.precision)

    def real(ids: list[int], k: int, seed_of: Callable[[int], int]) -> np.ndarray:
        return real_images(ctx, prompts, ids, k, seed_of)

    loaders = {key: (lambda m=key[0], a=artifact: decoder_stage.load(a, cfg, m, context, device))
               for key, artifact in ctx.decoders().items()}
    # Where the vectors a mode reads sit: against the CLIP image vectors of (at most) 4096 training images, drawn
    # at random with the sweep's seed (a dataset may be ordered).
    train_images = load_embeddings(ctx["embeddings"])["train"]["image"]
    chosen = torch.randperm(len(train_images), generator=torch.Generator().manual_seed(cfg.sweep.seed))
    train_images = train_images[chosen[:REAL_VECTORS]]
    return SweepRunner(cfg, prompts, loaders, Sources(load_sources(ctx, prompts), real, train_images),
                       load_judge(ctx))
