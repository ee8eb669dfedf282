"""The `embeddings` stage: the conditioning CLIP's vectors for every split, computed once.

One file, `embeddings.pt`, loadable with `torch.load(weights_only=True)`:
{split: {"text": [N, D] float32 unit-norm, "image": [N, D] float32 unit-norm, "tokens": [N, L] int64}}.
The meta records each split's mean paired text-image cosine (how wide CLIP's modality gap is), the vector
dimension, and the tokenizer's vocabulary size and context length (what a prior's token embedding needs).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from harness.runtime.cache import Artifact
from harness.clip.encode import CaptionTokens, encode_images, encode_texts
from harness.clip.model import load_clip
from harness.runtime.context import Context
from harness.data.splits import SPLITS, load_split
from harness.runtime.device import effective_precision

log = logging.getLogger(__name__)
VERSION = "1"
FILE = "embeddings.pt"


def run(ctx: Context) -> Artifact:
    """Build (or reuse) the embedding table of `ctx["data"]` under the CLIP artifact `ctx["clip"]`."""
    cfg, data, clip = ctx.cfg, ctx["data"], ctx["clip"]

    def build(workdir: Path) -> dict:
        model, tokenizer = load_clip(clip, ctx.device)
        tokenizer = CaptionTokens(tokenizer)  # each caption is tokenized once, for its vector and its ids
        table, meta = {}, {}
        for name in SPLITS:
            split = load_split(data, name)
            text = encode_texts(model, tokenizer, split.captions, precision=cfg.precision).cpu()
            image = encode_images(model, split.pixels, precision=cfg.precision).cpu()
            table[name] = {"text": text, "image": image, "tokens": tokenizer(split.captions).long()}
            meta[name] = {"count": len(text), "paired_cosine": float((text * image).sum(dim=1).mean())}
        torch.save(table, workdir / FILE)
        meta.update(dim=int(table["train"]["text"].shape[1]), vocab_size=int(model.vocab_size),
                    context_length=int(table["train"]["tokens"].shape[1]))
        log.info("embeddings: %s", ", ".join(f"{n} paired cosine {meta[n]['paired_cosine']:.3f}" for n in SPLITS))
        return meta

    config = {"precision": effective_precision(cfg.device, cfg.precision)}
    return ctx.cache.build("embeddings", VERSION, config, [data, clip], build)


def load_embeddings(artifact: Artifact) -> dict[str, dict[str, torch.Tensor]]:
    """{split: {"text", "image", "tokens"}} of an embeddings artifact (see the module docstring)."""
    return torch.load(artifact.file(FILE), map_location="cpu", weights_only=True)
