"""The sweep's prompts, chosen by the data: on the shapes world, fresh captions of each configured kind."""

from __future__ import annotations

from harness.context import Context
from harness.data.build import load_split
from harness.data.world import Prompt, prompts_by_kind


def sweep_prompts(ctx: Context) -> list[Prompt]:
    """Held-out prompts, stratified by kind (`sweep.prompt_kinds`, `sweep.prompts_per_kind`), avoiding the
    training captions where the world has enough others; deterministic in `sweep.seed`."""
    cfg = ctx.cfg.sweep
    return prompts_by_kind(ctx.world, cfg.prompt_kinds, cfg.prompts_per_kind, cfg.seed, avoid=train_captions(ctx))


def train_captions(ctx: Context) -> set[str]:
    return set(load_split(ctx["data"], "train").captions)
