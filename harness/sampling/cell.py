"""The sweep's plan: which lines each mode is sampled as, and the cells they are cut into.

A cell is one line (`harness.line.Line`: a mode under an arm, maybe with a token group hidden or at a separate
text scale) of one trained decoder (training seed) at one guidance scale, over one chunk of prompts: the unit
that is sampled, saved and resumed. Its file is named by a digest of its key, and the key itself is saved inside
the file, so no line is ever parsed out of a name.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from harness.config import Config
from harness.errors import ConfigError
from harness.line import Line
from harness.sampling.arms.base import PLAIN, Plain, SamplingArm, arm_class


@dataclass(frozen=True)
class Cell:
    line: Line
    seed: int  # the decoder's training seed
    guidance: float
    chunk: int

    def key(self) -> dict:
        return {**self.line.columns(), "text_scale": self.line.text_scale, "train_seed": self.seed,
                "guidance": self.guidance, "chunk": self.chunk}

    @property
    def name(self) -> str:
        """The cell's file name: a digest of its key."""
        return hashlib.sha1(json.dumps(self.key(), sort_keys=True).encode()).hexdigest()[:20]

    @classmethod
    def from_key(cls, key: dict) -> Cell:
        return cls(Line.of(key), int(key["train_seed"]), float(key["guidance"]), int(key["chunk"]))


def chunks(n: int, size: int) -> list[range]:
    return [range(start, min(n, start + size)) for start in range(0, n, size)]


@dataclass(frozen=True)
class ModePlan:
    """How one mode is swept."""
    arms: list[str]  # every arm it is sampled under
    baselines: list[str]  # its own way of sampling (plain, or prior-draw policies): the reliance cells use these
    token_groups: tuple[str, ...]  # what its attention sees; with two, each is hidden in turn (reliance)
    text_arms: list[str]  # arms also sampled at each separate text scale (modes with two pathways)


def plan(cfg: Config, modes: dict[str, ModePlan], n_prompts: int) -> list[Cell]:
    """Every cell of the sweep, in a fixed order (modes, seeds, guidance, arms, chunks), then the reliance
    cells: for modes with two token groups, each group hidden in turn at `sweep.reliance_guidance`, under each
    of the mode's baseline arms; then the cells at separate text scales."""
    n_chunks = range(len(chunks(n_prompts, cfg.sweep.cells_per_chunk)))
    cells = [Cell(Line(mode, arm), seed, float(g), c)
             for mode, p in modes.items() for seed in cfg.seeds_for(mode) for g in cfg.sweep.guidance
             for arm in p.arms for c in n_chunks]
    cells += [Cell(Line(mode, arm, ablation=group), seed, float(g), c)
              for mode, p in modes.items() if len(p.token_groups) > 1 for seed in cfg.seeds_for(mode)
              for g in cfg.sweep.reliance_guidance for arm in p.baselines for group in p.token_groups
              for c in n_chunks]
    cells += [Cell(Line(mode, arm, text_scale=float(t)), seed, float(g), c)
              for mode, p in modes.items() for seed in cfg.seeds_for(mode) for t in cfg.sweep.text_guidance
              for g in cfg.sweep.guidance for arm in p.text_arms for c in n_chunks]
    return cells


def build_arms(cfg: Config) -> dict[str, SamplingArm]:
    """The run's sampling arms by name, and the plain arm of modes that draw nothing (`harness.line.NONE`)."""
    arms: dict[str, SamplingArm] = {PLAIN: Plain(PLAIN)}
    for name, arm_cfg in cfg.arms.items():
        arms[name] = arm_class(arm_cfg.module)(name, dict(arm_cfg.params))
    return arms


def mode_plans(cfg: Config, built: dict[str, SamplingArm] | None = None) -> dict[str, ModePlan]:
    """How each mode is swept: a mode that draws nothing is sampled plain and under each arm that applies to it;
    a mode that draws from the prior under its draw arms and the others that apply."""
    built = built or build_arms(cfg)
    plans = {}
    for mode in cfg.conditioning:
        mode_cfg = cfg.conditioning[mode]
        chosen = [name for name, arm_cfg in cfg.arms.items()
                  if type(built[name]).applies_to(mode_cfg) and (not arm_cfg.modes or mode in arm_cfg.modes)]
        arms = chosen if mode_cfg.draws_from_prior else [PLAIN, *chosen]
        baselines = [name for name in arms if built[name].baseline]
        if not baselines:
            raise ConfigError("arms", f"mode {mode} samples from the prior but no chosen arm says how many draws: "
                                      "add fixed or per_sample (arms=[fixed,per_sample,...])")
        plans[mode] = ModePlan(arms, baselines, mode_cfg.token_groups,
                               [name for name in arms if built[name].separate_scales] if mode_cfg.two_pathways else [])
    return plans


def describe_arms(cfg: Config) -> dict:
    """The run's arms as the report prints them: module, parameters, whether it is a baseline (a mode's own way
    of sampling) and the modes it was sampled with."""
    built = build_arms(cfg)
    modes = mode_plans(cfg, built)
    return {name: {**built[name].describe(), "baseline": built[name].baseline,
                   "modes": [mode for mode, p in modes.items() if name in p.arms]} for name in cfg.arms}

