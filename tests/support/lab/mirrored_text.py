"""`lab.mirrored_text`: the caption's text vector with its coordinates reversed, past the first `keep` of them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from harness.config import ConditioningConfig
from harness.sampling.arms.base import SamplingArm, VectorInputs, register_arm


@register_arm("lab.mirrored_text")
class MirroredText(SamplingArm):
    @dataclass(frozen=True)
    class Params:
        keep: int = 0

    @classmethod
    def applies_to(cls, mode: ConditioningConfig) -> bool:
        return mode.vector_source == "text"

    def perturb(self, vectors: VectorInputs) -> VectorInputs:
        keep = self.params.keep
        mirrored = vectors.text.clone()
        mirrored[..., keep:] = vectors.text[..., keep:].flip(-1)
        return dataclasses.replace(vectors, text=mirrored)
