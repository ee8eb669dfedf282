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
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from harness.runtime.cache import Artifact
from harness.config import DataConfig, key_fields
from harness.runtime.context import Context
from harness.data.world import ObjectSpec, Prompt, ShapesWorld

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
VERSION = "2"  # 2: two-object scenes: large objects at the two ends of the axis their relation orders


def prompt_to_json(prompt: Prompt) -> str:
    return json.dumps(dataclasses.asdict(prompt))


def prompt_from_json(text: str) -> Prompt:
    raw = json.loads(text)
    return Prompt(raw["kind"], tuple(ObjectSpec(**o) for o in raw["objects"]), raw["background"], raw["relation"])


def split_sizes(n: int, val_fraction: float, test_fraction: float) -> dict[str, int]:
    n_val, n_test = max(1, round(n * val_fraction)), max(1, round(n * test_fraction))
    if n - n_val - n_test < 1:
        raise ValueError(f"{n} images are too few for val/test fractions {val_fraction}/{test_fraction}")
    return {"train": n - n_val - n_test, "val": n_val, "test": n_test}


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
    from harness.data import hf_source

    cfg = ctx.cfg.data
    config = key_fields(cfg, f"data.{cfg.source}")  # the fields of this source (harness/config/schema.py)
    if cfg.source == "shapes":
        return ctx.cache.build("data", VERSION, config, [], lambda w: build_shapes(cfg, ctx.world, w))
    from harness.data.prompts import held_out_captions

    artifact = ctx.cache.build("data", f"hf{hf_source.VERSION}", config, [], lambda w: hf_source.build(cfg, w))
    held_out_captions(artifact, ctx.cfg)  # a test split too small for the prompts fails here, before training
    return artifact


@dataclass
class Split:
    """One split of a dataset artifact, loaded lazily: pixels memory-mapped, text columns read once."""
    artifact: Artifact
    name: str

    @cached_property
    def pixels(self) -> np.ndarray:
        return np.load(self.artifact.file(f"pixels_{self.name}.npy"), mmap_mode="r")

    @cached_property
    def _table(self):
        import datasets
        return datasets.load_from_disk(str(self.artifact.file("dataset")))[self.name]

    @cached_property
    def captions(self) -> list[str]:
        return list(self._table["caption"])

    @cached_property
    def prompts(self) -> list[Prompt] | None:
        """What each caption fixes (shapes world only)."""
        if "prompt" not in self._table.column_names:
            return None
        return [prompt_from_json(p) for p in self._table["prompt"]]

    @cached_property
    def attributes(self) -> list[dict] | None:
        if "attributes" not in self._table.column_names:
            return None
        return [json.loads(a) for a in self._table["attributes"]]

    def __len__(self) -> int:
        return len(self.pixels)


def load_split(artifact: Artifact, name: str) -> Split:
    if name not in SPLITS:
        raise ValueError(f"unknown split {name!r}; splits are {', '.join(SPLITS)}")
    return Split(artifact, name)
