"""The `clip` stage: the conditioning CLIP, trained from scratch on the train split or pretrained.

The artifact is an open_clip local-dir folder (see `harness.clip.model`); while a scratch model trains, the
same folder holds the training checkpoint, so a killed build resumes where it stopped. Its meta holds the
training figures and the quality figures of `harness.clip.quality` on the val split.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from harness.runtime.cache import Artifact
from harness.clip.model import create_from_folder
from harness.clip.negatives import HardNegatives
from harness.clip.pretrained import PretrainedModel, fingerprint, install_pretrained
from harness.clip.quality import split_quality, summary_line
from harness.clip.train import CaptionedImages, train_clip
from harness.config import Config, key_fields
from harness.runtime.context import Context
from harness.data.splits import load_split
from harness.runtime.device import effective_precision

log = logging.getLogger(__name__)
VERSION = "1"


def stage_config(cfg: Config) -> dict:
    """What keys the stage's artifact: the pretrained model's identity, or the fields the schema marks for it
    (architecture, recipe, hard negatives) and the precision it trains at."""
    if cfg.clip.kind == "pretrained":
        return fingerprint(PretrainedModel.conditioning(cfg.clip))
    return {**key_fields(cfg, "clip"), "precision": effective_precision(cfg.device, cfg.precision)}


def run(ctx: Context) -> Artifact:
    """Build (or reuse) the conditioning CLIP on the dataset artifact `ctx["data"]`."""
    cfg, data = ctx.cfg, ctx["data"]

    def build(workdir: Path) -> dict:
        meta: dict = {"kind": cfg.clip.kind}
        if cfg.clip.kind == "pretrained":
            install_pretrained(PretrainedModel.conditioning(cfg.clip), workdir)
            model, tokenizer = create_from_folder(workdir, ctx.device)
        else:
            split = load_split(data, "train")
            negatives = None
            if cfg.clip.hard_negatives:  # the config check guarantees the shapes world here
                negatives = HardNegatives(ctx.world.vocab, cfg.clip.num_hard_negatives)
            train_set = CaptionedImages(np.asarray(split.pixels), split.captions, split.prompts, split.attributes)
            model, tokenizer, result = train_clip(workdir, train_set, cfg.clip, seed=cfg.clip.train.seed,
                                                  device=ctx.device, negatives=negatives, precision=cfg.precision,
                                                  progress=cfg.progress, desc="clip")
            meta["train"] = result.summary()
        meta["quality"] = split_quality(model.eval(), tokenizer, load_split(data, "val"), ctx)
        log.info("clip (%s): %s", cfg.clip.kind, summary_line(meta["quality"]))
        return meta

    # A scratch CLIP trains on every rank under torchrun; installing pretrained weights is rank 0's job alone.
    return ctx.cache.build("clip", VERSION, stage_config(cfg), [data], build, every_rank=cfg.clip.kind == "scratch")
