"""The data stage: a config in, a dataset artifact out (docs/design.md, sections 1 and 4).

The artifact holds the `datasets` DatasetDict (columns `image`, `caption`, `kind`, `prompt`, `attributes`;
the last two are JSON: what the caption fixes and the full ground truth) and, beside it, each split's pixels
as one uint8 array `pixels_<split>.npy` so that training stages memory-map images instead of decoding PNGs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np

from harness.config import DataConfig, key_fields
from harness.data import hf_source
from harness.data.prompts import held_out_captions
from harness.data.splits import split_sizes
from harness.data.world import Prompt, ShapesWorld
from harness.runtime.cache import Artifact
from harness.runtime.context import Context

log = logging.getLogger(__name__)

VERSION = "2"  # 2: two-object scenes: large objects at the two ends of the axis their relation orders


def prompt_to_json(prompt: Prompt) -> str:
    return json.dumps(dataclasses.asdict(prompt))


def build_shapes(cfg: DataConfig, world: ShapesWorld, workdir: Path) -> dict:
    import datasets

    started = time.perf_counter()
    prompts, scenes, pixels = world.generate(cfg.num_images, cfg.seed)
    elapsed = time.perf_counter() - started
    rate = cfg.num_images / max(elapsed, 1e-9)
    log.info("shapes world: %d images at %d px in %.1f s (%.0f images/s)", cfg.num_images, cfg.resolution,
             elapsed, rate)
    splits, start = {}, 0
    for name, size in split_sizes(cfg.num_images, cfg.val_fraction, cfg.test_fraction).items():
        rows = range(start, start + size)
        start += size
        np.save(workdir / f"pixels_{name}.npy", pixels[rows.start:rows.stop])
        splits[name] = datasets.Dataset.from_dict(
            {"image": [pixels[i] for i in rows],
             "caption": [prompts[i].caption for i in rows],
             "kind": [prompts[i].kind for i in rows],
             "prompt": [prompt_to_json(prompts[i]) for i in rows],
             "attributes": [json.dumps(scenes[i].to_record(world.vocab.grid)) for i in rows]},
            features=datasets.Features({"image": datasets.Image(), "caption": datasets.Value("string"),
                                        "kind": datasets.Value("string"), "prompt": datasets.Value("string"),
                                        "attributes": datasets.Value("string")}))
    datasets.DatasetDict(splits).save_to_disk(str(workdir / "dataset"))
    return {"images": cfg.num_images, "generation_images_per_s": round(rate, 1),
            "splits": {k: len(v) for k, v in splits.items()}}


def run(ctx: Context) -> Artifact:
    """Build (or reuse) the dataset artifact of `ctx.cfg.data`."""
    cfg = ctx.cfg.data
    config = key_fields(cfg, f"data.{cfg.source}")  # the fields of this source (harness/config/schema.py)
    if cfg.source == "shapes":
        return ctx.cache.build("data", VERSION, config, [], lambda w: build_shapes(cfg, ctx.world, w))
    artifact = ctx.cache.build("data", f"hf{hf_source.VERSION}", config, [], lambda w: hf_source.build(cfg, w))
    held_out_captions(artifact, ctx.cfg)  # a test split too small for the prompts fails here, before training
    return artifact
