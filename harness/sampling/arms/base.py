"""A sampling arm: one small subclass of `SamplingArm`, registered under a name with `@register_arm`.

An arm may change three things, each with a default that leaves sampling as plain classifier-free guidance:
- which prior draws a mode that samples from the prior gets (`draws`: one per prompt or one per sample; `draw`
  for any other use of the chunk's stream);
- the CLIP vectors a mode reads (`perturb`, before the mode encodes them);
- how the guided prediction is formed at each step (`model_fn`, from the guidance branches at any scale).
Its parameters are a dataclass `Params`; the YAML's `params` are checked against it before any work starts. A new
arm is one module (here, or anywhere importable, registered under its dotted path) and one YAML in conf/arms/ (or
a config folder on `hydra.searchpath`), with no edit to the sweep, the decoder or the report.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterator

import torch

from harness.conditioning.condition import Condition
from harness.config import ConditioningConfig
from harness.decoder.diffusion import ModelFn, NoiseLevels, guided
from harness.line import NONE
from harness.registry import Registry

ARMS: Registry[type["SamplingArm"]] = Registry("harness.sampling.arms", "arms.*.module", "sampling arm")
PLAIN = NONE  # the arm of plain sampling for a mode that draws nothing: its own vectors, plain guidance
FIXED, PER_SAMPLE = "fixed", "per_sample"
register_arm, arm_class = ARMS.register, ARMS.get


@dataclass(frozen=True)
class NoParams:
    pass


def check_params(cls: type["SamplingArm"], params: dict) -> Iterator[tuple[str, str]]:
    """(key, problem) for every parameter that `cls.Params` does not have or cannot take."""
    fields = {f.name: f for f in dataclasses.fields(cls.Params)}
    hints = typing.get_type_hints(cls.Params)
    for key, value in params.items():
        if key not in fields:
            yield key, f"no such parameter of arm {cls.module_name!r}; it has: {', '.join(fields) or 'none'}"
        elif hints[key] in (int, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
            yield key, f"must be a number, got {value!r}"
        elif hints[key] is bool and not isinstance(value, bool):
            yield key, f"must be true or false, got {value!r}"
    try:
        params_of(cls, params)
    except ValueError as exc:  # a Params' own range check
        key, _, message = str(exc).partition(": ")
        yield key, message


def params_of(cls: type["SamplingArm"], params: dict) -> Any:
    known = {f.name for f in dataclasses.fields(cls.Params)}
    return cls.Params(**{k: v for k, v in params.items() if k in known})


@dataclass
class Guidance:
    """What an arm may build its prediction from at one guidance scale: the branches and weights of
    `ConditioningMode.guidance_branches` (the full condition first, the null last)."""
    branches: list[Condition]
    weights: list[float]
    scale: float
    levels: NoiseLevels
    seed: int  # the cell's own random stream, the same at every guidance scale (paired)

    def unguided(self) -> tuple[list[Condition], list[float]]:
        """The conditional prediction alone (guidance 1 on every pathway): the full condition with weight 1."""
        return self.branches[:1], [1.0]


# n, generator, prompt ids (None: the cell's own) -> [P, n, D] prior draws for those captions
PriorDrawer = Callable[..., torch.Tensor]
# n, then the prior's settings to override (best_of, guidance) -> [P, n, D] draws from the cell's chunk stream
ChunkDrawer = Callable[..., torch.Tensor]


@dataclass
class VectorInputs:
    """The CLIP vectors a mode reads at sampling, per prompt and sample, and where more can be drawn."""
    text: torch.Tensor  # [P, K, D] the captions' CLIP text vectors
    image: torch.Tensor | None  # [P, K, D] prior or oracle draws, None for modes that read text vectors
    prior_draws: PriorDrawer | None  # (n, generator, ids=None) -> [P, n, D] more prior draws
    seed: int
    # n -> [P, n, D] prior draws of the cell's captions from a stream of the chunk's own, the same for every arm
    # and guidance scale (drawn once): the controls' reference draws, paired across arms
    reference: Callable[[int], torch.Tensor] | None = None
    chunk_seed: int = 0  # the chunk's stream, for what arms of one module share (a control's noise over its scales)
    prompt_ids: list[int] = field(default_factory=list)  # the cell's prompts, as the sweep numbers them
    kinds: list[str] = field(default_factory=list)  # every sweep prompt's kind, by sweep number
    # What the decoder reads from an image vector: the Gram matrix R^T R [D, D] of the linear part R of its
    # conditioning projection (None: the vector itself). Spreads matched "where the decoder reads them" use it.
    reads: torch.Tensor | None = None


class SamplingArm:
    Params: ClassVar[type] = NoParams
    # For a mode that samples from the prior: one draw per prompt ("fixed") or per sample ("per_sample").
    draws: ClassVar[str] = PER_SAMPLE
    # Whether the arm works with separate text and vector scales (three branches) as well as a joint one.
    separate_scales: ClassVar[bool] = True
    # A baseline is a mode's own way of sampling (plain guidance; for a prior mode, a draw policy): the reliance
    # test runs under it, and the other arms are read against it.
    baseline: ClassVar[bool] = False
    module_name: ClassVar[str] = ""

    def __init__(self, name: str, params: dict | None = None) -> None:
        self.name = name
        self.params = params_of(type(self), params or {})

    @classmethod
    def prior_problem(cls, prior: Any) -> str:
        """Why the run's prior (`PriorConfig`) cannot serve this arm ("" when it can): checked before work starts."""
        return ""

    @classmethod
    def applies_to(cls, mode: ConditioningConfig) -> bool:
        """Whether this arm makes sense for the conditioning mode `mode` (its flags; default: every mode)."""
        return True

    def draw(self, draws: ChunkDrawer, text: torch.Tensor, k: int) -> torch.Tensor:
        """A prior mode's image vectors [P, K, D] for captions with CLIP text vectors `text` [P, D], from the
        chunk's stream (paired across guidance scales and arms); default: one draw per prompt shared by its
        samples (`draws` fixed) or one per sample."""
        drawn = draws(1 if self.draws == FIXED else k)
        return drawn.expand(len(text), k, drawn.shape[-1])

    def perturb(self, vectors: VectorInputs) -> VectorInputs:
        """The vectors the mode encodes; default: as drawn."""
        return vectors

    def model_fn(self, model: Callable, guidance: Guidance) -> ModelFn:
        """The guided prediction; default: plain classifier-free guidance at `guidance.scale`."""
        return guided(model, guidance.branches, guidance.weights)

    def describe(self) -> dict:
        """The arm's parameters as the report prints them."""
        return {"module": self.module_name, **dataclasses.asdict(self.params)}


class Plain(SamplingArm):
    """A mode that draws nothing, sampled as it is: its own vectors, plain guidance (the arm named `-`)."""
    baseline = True


class OnPriorDraws(SamplingArm):
    """An arm for modes that sample from the prior (their draws are what it chooses or replaces)."""

    @classmethod
    def applies_to(cls, mode: ConditioningConfig) -> bool:
        return mode.draws_from_prior


class PriorDraws(OnPriorDraws):
    """A prior-draw policy (`draws`): a prior mode's own way of sampling, for modes that sample from the prior."""
    baseline = True


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed) % (2 ** 63))
