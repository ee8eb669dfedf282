"""`shuffled_draws`: each sample reads a fresh prior draw for another caption of the same kind.

Plausible image vectors, as many and as varied as the prior's, but not of this caption: if a decoder keeps its
diversity (and its fidelity falls), any plausible image vector is enough for the first and the prior's knowledge
of the caption matters for the second. The other caption is drawn per prompt from the sweep's prompts of the same
kind, the same at every guidance scale.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from harness.sampling.arms.base import OnPriorDraws, VectorInputs, generator, register_arm


def partners(prompt_ids: list[int], kinds: list[str], gen: torch.Generator) -> list[int]:
    """For each prompt, another sweep prompt of the same kind, chosen uniformly."""
    chosen = []
    for i in prompt_ids:
        others = [j for j, kind in enumerate(kinds) if kind == kinds[i] and j != i]
        if not others:
            raise ValueError(f"shuffled_draws: prompt {i} is the only one of kind {kinds[i]!r}; it needs another")
        chosen.append(others[int(torch.randint(len(others), (1,), generator=gen))])
    return chosen


@register_arm("shuffled_draws")
class ShuffledDraws(OnPriorDraws):
    def perturb(self, vectors: VectorInputs) -> VectorInputs:
        gen = generator(vectors.seed)
        others = partners(vectors.prompt_ids, vectors.kinds, gen)
        image = vectors.prior_draws(vectors.text.shape[1], gen, others)
        return replace(vectors, image=image.to(vectors.text))
