"""The stages a decoder needs, built (or found) in one cache: shared by the decoder tests and scripts."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.cache import Artifact, ArtifactCache
from harness.clip import embeddings as embeddings_stage, stage as clip_stage
from harness.config import Config
from harness.data import build as data_stage
from harness.decoder import stage as decoder_stage


@dataclass
class DecoderInputs:
    data: Artifact
    clip: Artifact
    embeddings: Artifact
    context: decoder_stage.ClipContext
    train_split: dict[str, torch.Tensor]

    def args(self, cfg: Config, cache: ArtifactCache, mode: str, seed: int = 0) -> tuple:
        """The arguments of `decoder_stage.run` for one mode and seed."""
        return cfg, cache, self.data, self.embeddings, self.train_split, self.context, mode, seed


def decoder_inputs(cfg: Config, cache: ArtifactCache) -> DecoderInputs:
    data = data_stage.run(cfg.data, cache)
    clip = clip_stage.run(cfg, cache, data)
    embeddings = embeddings_stage.run(cfg, cache, data, clip)
    return DecoderInputs(data, clip, embeddings, decoder_stage.clip_context(clip, embeddings),
                         embeddings_stage.load_embeddings(embeddings)["train"])
