"""What the sweep reads, as artifacts, and the sweep runner and judge loaded from them.

The sweep samples its cells in worker processes when `workers` > 1 (`harness.sweep.run`). Loaded models and
closures over them do not cross a process boundary, so a worker receives this record of artifact folders
and loads the conditioning CLIP, the prior, the evaluator and the decoders it samples by itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from harness.cache import Artifact
from harness.config import Config
from harness.data.world import Prompt, ShapesWorld
from harness.device import resolve_device
from harness.seeds import derived_seed
from harness.sweep import Judge, Sources, SweepRunner


@dataclass(frozen=True)
class SweepInputs:
    cfg: Config
    prompts: list[Prompt]
    clip: Artifact
    embeddings: Artifact
    probe: Artifact
    eval_clip: Artifact
    priors: Artifact
    decoders: dict[tuple[str, int], Artifact]

    def judge(self) -> Judge:
        """The evaluator: probe readings and features, evaluation-CLIP embeddings (never the conditioning CLIP)."""
        from harness.clip import encode_images, encode_texts, load_clip
        from harness.evaluator.probe import load_probe

        device, precision = resolve_device(self.cfg.device), self.cfg.precision
        probe = load_probe(self.probe, device)
        model, tokenizer = load_clip(self.eval_clip, device)
        return Judge(read=probe.read, features=probe.features,
                     embed_images=lambda images: encode_images(model, images, precision=precision),
                     embed_texts=lambda captions: encode_texts(model, tokenizer, captions, precision=precision))

    def runner(self) -> SweepRunner:
        from harness.clip import encode_images, encode_texts, load_clip
        from harness.decoder import stage as decoder_stage
        from harness.priors.stage import load_prior

        cfg, prompts = self.cfg, self.prompts
        device, precision = resolve_device(cfg.device), cfg.precision
        world = ShapesWorld(cfg.data.shapes, cfg.data.resolution)
        clip_model, tokenizer = load_clip(self.clip, device)
        prior = load_prior(self.priors, cfg.prior.kind, device)
        context = decoder_stage.clip_context(self.clip, self.embeddings, device, precision)

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
                   for key, artifact in self.decoders.items()}
        return SweepRunner(cfg, prompts, loaders, sources, self.judge(), world)
