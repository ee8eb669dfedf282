"""The stages a decoder needs, reached through the pipeline: shared by the decoder tests and scripts."""

from __future__ import annotations

import torch

from harness.runtime import pipeline
from harness.runtime.cache import Artifact
from harness.clip.embeddings import load_embeddings
from harness.config import Config
from harness.runtime.context import DECODER, Context
from harness.decoder import stage as decoder_stage


def shipped_modes() -> list[str]:
    """Every conditioning mode the package ships (one YAML each in conf/conditioning/): what the suite trains and
    samples, so a mode added as a YAML is tested with no test edit."""
    from harness.config import CONF_DIR

    return sorted(path.stem for path in (CONF_DIR / "conditioning").glob("*.yaml"))


def upstream_of_decoders(cfg: Config) -> Context:
    """The context holding the data, CLIP and embedding artifacts of `cfg`, built (or found) in its cache."""
    return pipeline.build(Context.start(cfg), through="embeddings")


def train_decoder(ctx: Context, mode: str, seed: int = 0) -> Artifact:
    """The decoder stage for one mode and seed."""
    return pipeline.run_stage(DECODER, ctx.for_task(mode=mode, seed=seed))


def clip_context(ctx: Context) -> decoder_stage.ClipContext:
    return decoder_stage.clip_context(ctx["clip"], ctx["embeddings"])


def train_split(ctx: Context) -> dict[str, torch.Tensor]:
    """The train split's CLIP embeddings: {"tokens", "text", "image"}."""
    return load_embeddings(ctx["embeddings"])["train"]
