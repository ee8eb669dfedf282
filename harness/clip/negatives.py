"""Hard-negative captions: captions the shapes world knows to be false for a given image.

NegCLIP (Yuksekgonul et al. 2023, "When and why vision-language models behave like bags-of-words, and what to
do about it") trains CLIP with captions whose words were reordered, so a bag-of-words text encoder can no
longer match them. Here the world plays the simulator: it knows each image's true scene, so an edited caption
is a guaranteed negative, never a near-synonym that happens to be true. The edits, in order of preference:

- two-object (binding) captions: swap the two objects' colours, then their shapes ("a red circle left of a blue
  square" -> "a blue circle left of a red square"): the same words, bound the other way;
- then, and for single-object captions: change one mentioned attribute (colour, shape, size, position,
  background) to another value. A caption that mentions nothing changeable (an attribute with a single value
  in the vocabulary) gets an unmentioned attribute of its object set to a value the scene does not have.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from harness.data.world import OBJECT_ATTRIBUTES, Prompt, Vocabulary


class HardNegatives:
    """`count` false captions per (prompt, scene record) pair."""

    def __init__(self, vocab: Vocabulary, count: int) -> None:
        self.vocab = vocab
        self.count = count

    def __call__(self, prompts: Sequence[Prompt], records: Sequence[dict], rng: np.random.Generator) -> list[str]:
        """The negatives of every pair, flattened: [len(prompts) * count] captions, pair-major."""
        return [false.caption for prompt, record in zip(prompts, records)
                for false in self.false_prompts(prompt, record, rng)]

    def false_prompts(self, prompt: Prompt, record: dict, rng: np.random.Generator) -> list[Prompt]:
        """`count` edits of `prompt` that the scene `record` does not satisfy."""
        edits = [_swap(prompt, "color"), _swap(prompt, "shape")] if prompt.relation else []
        edits = edits[:self.count]
        while len(edits) < self.count:
            edits.append(self._change_one(prompt, record, rng))
        return edits

    def _change_one(self, prompt: Prompt, record: dict, rng: np.random.Generator) -> Prompt:
        slots = [(i, a) for i, o in enumerate(prompt.objects) for a in OBJECT_ATTRIBUTES
                 if getattr(o, a) is not None and len(self.vocab.values(a)) > 1]
        if prompt.background is not None and len(self.vocab.backgrounds) > 1:
            slots.append((None, "background"))
        if not slots:  # only single-valued attributes were mentioned: contradict the scene on another one
            slots = [(0, a) for a in OBJECT_ATTRIBUTES if len(self.vocab.values(a)) > 1]
        index, attribute = slots[rng.integers(len(slots))]
        truth = record["background"] if index is None else record["objects"][index][attribute]
        value = _pick_other(rng, self.vocab.values(attribute), truth)
        if index is None:
            return dataclasses.replace(prompt, background=value)
        objects = list(prompt.objects)
        objects[index] = dataclasses.replace(objects[index], **{attribute: value})
        return dataclasses.replace(prompt, objects=tuple(objects))


def _swap(prompt: Prompt, attribute: str) -> Prompt:
    a, b = prompt.objects
    return dataclasses.replace(prompt, objects=(dataclasses.replace(a, **{attribute: getattr(b, attribute)}),
                                                dataclasses.replace(b, **{attribute: getattr(a, attribute)})))


def _pick_other(rng: np.random.Generator, values: Sequence[str], excluded: str) -> str:
    others = [v for v in values if v != excluded]
    return others[rng.integers(len(others))]
