"""What every stage receives (docs/design.md, section 1): `run(ctx) -> Artifact`.

A `Context` carries the config, the artifact cache, the device, the run folder and the upstream artifacts by
name; a stage reads the artifacts it needs from it and returns its own. Stages that run once per task (a
decoder per mode and seed) read their task from `ctx.task`. A context pickles, so a stage runs the same in a
worker process (`harness.runtime.parallel`) as in the main one.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import torch

from harness.runtime.cache import Artifact, ArtifactCache
from harness.config import Config
from harness.runtime.device import resolve_device

if TYPE_CHECKING:
    from harness.data.world import ShapesWorld

log = logging.getLogger(__name__)
DECODER = "decoder"


def decoder_name(mode: str, seed: int) -> str:
    """The name a trained decoder goes by, in the context and in progress lines."""
    return f"{DECODER}[{mode} seed {seed}]"


class StageClock:
    """The run's time per task of each phase, and a progress line as each phase begins.

    Tasks that ran side by side (workers > 1) each count their own time, so `times` sums to more than the
    wall clock; `wall()` is the real total.
    """

    def __init__(self, names: list[str]) -> None:
        self.names, self.started = names, time.perf_counter()
        self.times: dict[str, float] = {}

    def begin(self, name: str, label: str) -> None:
        log.info("[%d/%d] %s ... (%.0f s elapsed)", self.names.index(name) + 1, len(self.names), label,
                 time.perf_counter() - self.started)

    def wall(self) -> float:
        return round(time.perf_counter() - self.started, 2)


@dataclass(frozen=True)
class Context:
    cfg: Config
    cache: ArtifactCache
    device: torch.device
    run_dir: Path | None = None  # where the report is written; None for runs that stop before it
    artifacts: Mapping[str, Artifact] = field(default_factory=dict)
    task: Mapping[str, Any] = field(default_factory=dict)  # a per-task stage's task, e.g. {"mode", "seed"}
    clock: StageClock | None = None  # the run's time per stage so far (the pipeline's)

    @classmethod
    def start(cls, cfg: Config, run_dir: Path | None = None) -> Context:
        """An empty context for `cfg`: its cache (`cache_dir`, made absolute by the CLI) and its device."""
        return cls(cfg, ArtifactCache(Path(cfg.cache_dir)), resolve_device(cfg.device), run_dir)

    def __getitem__(self, name: str) -> Artifact:
        if name not in self.artifacts:
            raise KeyError(f"no artifact {name!r} upstream of this stage; built so far: "
                           f"{', '.join(self.artifacts) or 'none'}")
        return self.artifacts[name]

    def __contains__(self, name: str) -> bool:
        return name in self.artifacts

    def with_artifacts(self, artifacts: Mapping[str, Artifact]) -> Context:
        return dataclasses.replace(self, artifacts={**self.artifacts, **artifacts})

    def for_task(self, **task: Any) -> Context:
        return dataclasses.replace(self, task=task)

    def decoders(self) -> dict[tuple[str, int], Artifact]:
        """Every trained decoder upstream, by (mode, seed), in the config's order."""
        return {(mode, seed): self[decoder_name(mode, seed)]
                for mode in self.cfg.conditioning for seed in self.cfg.seeds_for(mode)}

    @cached_property
    def world(self) -> ShapesWorld:
        """The shapes world the data was rendered from: built here and nowhere else outside `harness.data`."""
        from harness.data.world import ShapesWorld

        if self.cfg.data.source != "shapes":
            raise ValueError("the shapes world exists with data=shapes only")
        return ShapesWorld(self.cfg.data.shapes, self.cfg.data.resolution)
