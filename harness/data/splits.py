"""A dataset artifact's splits: their sizes, and each split loaded lazily (pixels memory-mapped, text columns read
once). Every stage that reads data goes through here; the data stage (`harness.data.build`) writes them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from harness.data.world import ObjectSpec, Prompt
from harness.runtime.cache import Artifact

SPLITS = ("train", "val", "test")


def split_sizes(n: int, val_fraction: float, test_fraction: float) -> dict[str, int]:
    n_val, n_test = max(1, round(n * val_fraction)), max(1, round(n * test_fraction))
    if n - n_val - n_test < 1:
        raise ValueError(f"{n} images are too few for val/test fractions {val_fraction}/{test_fraction}")
    return {"train": n - n_val - n_test, "val": n_val, "test": n_test}


def prompt_from_json(text: str) -> Prompt:
    raw = json.loads(text)
    return Prompt(raw["kind"], tuple(ObjectSpec(**o) for o in raw["objects"]), raw["background"], raw["relation"])


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
