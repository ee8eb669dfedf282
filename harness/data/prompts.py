"""The sweep's prompts and their real images, chosen by the data (nothing downstream asks which it has).

- The shapes world: fresh captions of each configured kind (`prompts_by_kind`); a prompt's real images are
  rendered for it, drawing what its caption leaves free, as many as asked.
- A dataset: held-out captions of its test split; a caption's real images are the test images it captions
  (its own, then those of the same caption), as many as every prompt has, up to the number asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

import numpy as np

from harness.runtime.cache import Artifact
from harness.config import CAPTION_PROMPTS, Config
from harness.runtime.context import Context
from harness.data.splits import load_split
from harness.data.world import Prompt, prompts_by_kind
from harness.errors import HarnessError


@dataclass(frozen=True)
class HeldOutCaption:
    """A dataset's prompt: a caption of the test split and the rows of the images it captions there (the row
    it was drawn from first)."""
    caption: str
    images: tuple[int, ...]
    kind: str = CAPTION_PROMPTS


SweepPrompt = Union[Prompt, HeldOutCaption]


def sweep_prompts(ctx: Context) -> list[SweepPrompt]:
    """The prompts every mode is sampled on: `sweep.prompts_per_kind` of each kind, deterministic in
    `sweep.seed`; on the world, avoiding the training captions where it has enough others."""
    cfg = ctx.cfg.sweep
    if ctx.cfg.data.source != "shapes":
        return held_out_captions(ctx["data"], ctx.cfg)
    return prompts_by_kind(ctx.world, cfg.prompt_kinds, cfg.prompts_per_kind, cfg.seed, avoid=train_captions(ctx))


def held_out_captions(data: Artifact, cfg: Config) -> list[HeldOutCaption]:
    """`sweep.prompts_per_kind` distinct captions of the test split, in an order drawn from `sweep.seed`."""
    split, wanted = load_split(data, "test"), cfg.sweep.prompts_per_kind
    rows: dict[str, list[int]] = {}  # caption -> its rows, in the drawn order; dicts keep the order drawn
    for row in np.random.default_rng(cfg.sweep.seed).permutation(len(split)):
        rows.setdefault(split.captions[row], []).append(int(row))
    chosen = dict(list(rows.items())[:wanted])
    if len(chosen) < wanted:
        raise HarnessError(f"sweep.prompts_per_kind: the sweep asks for {wanted} held-out captions, but the test "
                           f"split of {cfg.data.hf.path} has {len(chosen)} distinct ones ({len(split)} images); "
                           "ask for fewer or raise data.test_fraction")
    return [HeldOutCaption(caption, tuple(images)) for caption, images in chosen.items()]


def train_captions(ctx: Context) -> set[str]:
    return set(load_split(ctx["data"], "train").captions)


def real_images(ctx: Context, prompts: list[SweepPrompt], ids: list[int], k: int,
                seed_of: Callable[[int], int]) -> np.ndarray:
    """uint8 [len(ids), K, H, W, 3]: on the world, k fresh images per prompt (prompt i's drawn with
    `seed_of(i)`); on a dataset, the test images each held-out caption captions, K = min(k, the fewest any
    prompt has): one where captions are unique."""
    if ctx.cfg.data.source == "shapes":
        return np.stack([ctx.world.references(prompts[i], k, seed=seed_of(i))[1] for i in ids])
    pixels = load_split(ctx["data"], "test").pixels
    per_prompt = min(k, *(len(p.images) for p in prompts))
    return np.stack([np.asarray(pixels[list(prompts[i].images[:per_prompt])]) for i in ids])
