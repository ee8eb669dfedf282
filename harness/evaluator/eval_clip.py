"""The `eval_clip` stage: an evaluation CLIP, independent of the conditioning one (docs/design.md, section 5).

With `evaluator.clip_weights` it is a pretrained open_clip model from that file
(`harness.clip.pretrained`). Otherwise it is trained here, with the conditioning CLIP's recipe
(`harness.clip.train.train_clip`) but another architecture (towers `evaluator.clip_width_factor` as wide and
`evaluator.clip_extra_layers` deeper), another seed (`evaluator.clip_seed`, for the initial weights and the
data order) and other images:
- shapes: a fresh set rendered by the world with a seed derived from `evaluator.clip_seed`, as large as the
  train split; its quality is measured on the dataset's val split, which it never saw;
- any other dataset: the train split, in another order (a dataset cannot render more images, and its val and
  test splits are too small to train a judge on: on 1797 digits, a judge trained on them retrieved captions
  of the train split at chance, recall@1 0.023 among 40 captions). The test split, whose images are the
  prompts' real references, stays unseen by both CLIPs; the quality of both is measured on the val split.
It never uses hard negatives, so the judge stays the same when question 5 toggles them on the conditioning CLIP.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from harness.runtime.cache import Artifact
from harness.clip.model import create_from_folder
from harness.clip.pretrained import PretrainedModel, fingerprint, install_pretrained
from harness.clip.quality import split_quality, summary_line
from harness.clip.train import CaptionedImages, train_clip
from harness.config import ClipConfig, Config, key_fields
from harness.runtime.context import Context
from harness.data.splits import load_split
from harness.runtime.device import effective_precision
from harness.seeds import derived_seed

log = logging.getLogger(__name__)
VERSION = "2"  # 2: on a dataset, trained on the train split (was val and test)


def training_set(ctx: Context) -> CaptionedImages:
    cfg, data = ctx.cfg, ctx["data"]
    if cfg.data.source == "shapes":
        prompts, _, pixels = ctx.world.generate(len(load_split(data, "train")),
                                            derived_seed(cfg.evaluator.clip_seed, "eval_clip_images"))
        return CaptionedImages(pixels, [p.caption for p in prompts])
    train = load_split(data, "train")
    return CaptionedImages(np.asarray(train.pixels), list(train.captions))


def architecture(cfg: Config) -> ClipConfig:
    """The evaluation CLIP's config: the conditioning CLIP's, resized, and never with hard negatives."""
    def width(tower: str) -> int:
        heads = getattr(cfg.clip, f"{tower}_heads")
        return heads * max(1, round(getattr(cfg.clip, f"{tower}_width") * cfg.evaluator.clip_width_factor / heads))

    extra = cfg.evaluator.clip_extra_layers
    return dataclasses.replace(cfg.clip, vision_width=width("vision"), text_width=width("text"),
                               vision_layers=cfg.clip.vision_layers + extra, text_layers=cfg.clip.text_layers + extra,
                               hard_negatives=False)


def run(ctx: Context) -> Artifact:
    """Build (or reuse) the evaluation CLIP, trained here or pretrained (`evaluator.clip_weights`); load it with
    `harness.clip.load_clip`."""
    cfg, data = ctx.cfg, ctx["data"]
    clip_cfg = architecture(cfg)
    pretrained = PretrainedModel.judge(cfg.evaluator) if cfg.evaluator.clip_weights else None

    def build(workdir: Path) -> dict:
        meta: dict = {"kind": "pretrained" if pretrained else "scratch"}
        if pretrained:
            install_pretrained(pretrained, workdir)
            model, tokenizer = create_from_folder(workdir, ctx.device)
        else:
            model, tokenizer, result = train_clip(workdir, training_set(ctx), clip_cfg,
                                                  seed=cfg.evaluator.clip_seed, device=ctx.device,
                                                  precision=cfg.precision, progress=cfg.progress, desc="eval_clip")
            meta["train"] = result.summary()
        meta["quality"] = split_quality(model.eval(), tokenizer, load_split(data, "val"), ctx)
        log.info("eval_clip (%s): %s", meta["kind"], summary_line(meta["quality"]))
        return meta

    # Trained here, it keys on its own seed and size and on the conditioning CLIP's architecture and recipe it is
    # derived from (not that CLIP's seed or hard negatives: the judge stays the same when they change).
    config = fingerprint(pretrained) if pretrained else {
        **key_fields(cfg, "eval_clip"), "precision": effective_precision(cfg.device, cfg.precision)}
    # Installing pretrained weights is rank 0's job alone; training runs on every rank under torchrun.
    return ctx.cache.build("eval_clip", VERSION, config, [data], build, every_rank=pretrained is None)
