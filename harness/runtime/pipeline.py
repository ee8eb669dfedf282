"""The experiment pipeline (docs/design.md, section 1): the ordered stages and the phases that run side by side.

Every stage is a module with `run(ctx) -> Artifact` (`harness.runtime.context`); the pipeline only orders them, hands
each the context holding the artifacts built before it, and records the time each took. A stage may also
estimate its work with `cost(ctx) -> float` (FLOPs): a phase then starts its costliest tasks first.

data -> clip -> embeddings -> prior -> decoder[mode, seed] -> sweep[mode x guidance x policy] -> metrics -> report
   \\-> probe, eval_clip (the evaluator, independent of the conditioning CLIP) ---------^

Under torchrun every rank runs the stages up to the decoders (the trained ones with DDP, see
`harness.runtime.distributed`); then the other ranks return and rank 0 alone runs the sweep, the metrics and the
report. Those need no gradients and are cached cell by cell, and a rank waiting in a collective through
them could time out, so they are not split.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable

from omegaconf import OmegaConf

from harness.runtime import distributed, parallel, tracking
from harness.runtime.cache import Artifact
from harness.config import Config
from harness.runtime.context import DECODER, Context, StageClock, decoder_name
from harness.runtime.tracking import Tracker

log = logging.getLogger(__name__)

# Each stage's module; every one has `run(ctx) -> Artifact`.
STAGES = {"data": "harness.data.build", "clip": "harness.clip.stage", "embeddings": "harness.clip.embeddings",
          "prior": "harness.priors.stage", "probe": "harness.evaluator.probe",
          "eval_clip": "harness.evaluator.eval_clip", DECODER: "harness.decoder.stage", "sweep": "harness.sampling.stage",
          "metrics": "harness.metrics.stage", "report": "harness.report.stage"}
JUDGES = "judges"  # in NEEDS: the stages that judge samples, which the data chooses (`judge_stages`)
# The artifacts each stage reads from its context.
NEEDS = {"data": (), "clip": ("data",), "embeddings": ("data", "clip"), "prior": ("data", "embeddings"),
         "probe": ("data",), "eval_clip": ("data",), DECODER: ("data", "clip", "embeddings"),
         "sweep": ("data", "clip", "embeddings", "prior", JUDGES, DECODER),
         "metrics": ("sweep", JUDGES), "report": ("data", "metrics", "sweep", "clip", JUDGES, "prior", DECODER)}


def judge_stages(cfg: Config) -> tuple[str, ...]:
    """The shapes world is judged by the attribute probe and the evaluation CLIP; a dataset by the evaluation
    CLIP alone."""
    return ("probe", "eval_clip") if cfg.data.source == "shapes" else ("eval_clip",)


@dataclass(frozen=True)
class Task:
    """Stages run one after the other in one process, each seeing the artifacts of those before it."""
    stages: tuple[str, ...]
    params: dict[str, Any] = field(default_factory=dict)  # the context's `task` (a decoder's mode and seed)
    name: str | None = None  # what its one artifact is called in the context (default: the stage's name)


@dataclass(frozen=True)
class Phase:
    """Tasks that do not feed each other, run side by side when `workers` > 1 (`harness.runtime.parallel`)."""
    name: str
    tasks: dict[str, Task]  # by label
    main_only: bool = False  # runs on rank 0 alone under torchrun


def phases(cfg: Config) -> list[Phase]:
    """The pipeline's phases in order. The prior needs only the CLIP's embeddings, so it trains in the first
    phase behind the CLIP, beside the evaluator, rather than in the decoders' phase, where it left a worker
    idle at the end."""
    decoders = {decoder_name(mode, seed): Task((DECODER,), {"mode": mode, "seed": seed}, decoder_name(mode, seed))
                for mode in cfg.conditioning for seed in cfg.seeds_for(mode)}
    judges = {name: Task((name,)) for name in judge_stages(cfg)}
    return [Phase("data", {"data": Task(("data",))}),
            Phase("clip", {"clip -> embeddings -> prior": Task(("clip", "embeddings", "prior")), **judges}),
            Phase(DECODER, decoders),
            Phase("sweep", {"sweep": Task(("sweep",))}, main_only=True),
            Phase("metrics", {"metrics": Task(("metrics",))}, main_only=True),
            Phase("report", {"report": Task(("report",))}, main_only=True)]


def run_stage(name: str, ctx: Context) -> Artifact:
    """Stage `name` on `ctx`: its artifact, built or found in the cache."""
    return importlib.import_module(STAGES[name]).run(ctx)


def run_task(task: Task, ctx: Context) -> dict[str, Artifact]:
    """The task's stages in order; returns their artifacts by name."""
    built: dict[str, Artifact] = {}
    ctx = ctx.for_task(**task.params)
    for stage in task.stages:
        built[task.name or stage] = run_stage(stage, ctx)
        ctx = ctx.with_artifacts(built)
    return built


def task_costs(tasks: dict[str, Task], ctx: Context) -> dict[str, float] | None:
    """Each task's work as its stages estimate it (a stage module's optional `cost(ctx)`, in FLOPs), so that
    `harness.runtime.parallel` starts the costliest first; None, keeping the given order, when a stage cannot tell."""
    modules = {stage: importlib.import_module(STAGES[stage]) for task in tasks.values() for stage in task.stages}
    if not all(hasattr(module, "cost") for module in modules.values()):
        return None
    return {label: sum(modules[stage].cost(ctx.for_task(**task.params)) for stage in task.stages)
            for label, task in tasks.items()}


def wanted_stages(cfg: Config, through: Iterable[str]) -> set[str]:
    """The stages in `through` and every stage they read from, transitively."""
    wanted, todo = set(), list(through)
    while todo:
        stage = todo.pop()
        if stage not in STAGES:
            raise ValueError(f"no stage {stage!r}; stages are {', '.join(STAGES)}")
        if stage not in wanted:
            wanted.add(stage)
            todo.extend(s for need in NEEDS[stage] for s in (judge_stages(cfg) if need == JUDGES else (need,)))
    return wanted


def build(ctx: Context, through: str | tuple[str, ...] = "report") -> Context | None:
    """Run the phases of `ctx.cfg` that the stage(s) `through` need (all of them by default), each phase's
    tasks side by side; returns the context holding every artifact built, or None on torchrun ranks other than
    0, which stop after the decoders. Tests and benchmarks reach stages through here too."""
    wanted = wanted_stages(ctx.cfg, [through] if isinstance(through, str) else through)
    clock = StageClock([p.name for p in phases(ctx.cfg)])
    ctx, released = replace(ctx, clock=clock), False
    for phase in phases(ctx.cfg):
        tasks = {label: replace(task, stages=tuple(s for s in task.stages if s in wanted))
                 for label, task in phase.tasks.items() if wanted & set(task.stages)}
        if not tasks:
            continue
        if phase.main_only and not released:
            released = True
            if not distributed.release_workers():
                return None
        clock.begin(phase.name, ", ".join(tasks) if len(tasks) <= 3 else f"{len(tasks)} {phase.name}s")
        # Order only matters with more tasks than worker processes (one process runs them all under torchrun).
        costs = task_costs(tasks, ctx) if len(tasks) > ctx.cfg.workers > 1 and not distributed.launched() else None
        built, seconds = parallel.run_tasks({label: (run_task, (task, ctx)) for label, task in tasks.items()},
                                            ctx.cfg.workers, desc=f"{phase.name} tasks", costs=costs)
        clock.times.update(seconds)
        for artifacts in built.values():
            ctx = ctx.with_artifacts(artifacts)
    return ctx


def run(cfg: Config, run_dir: Path) -> dict:
    """Run every stage of `cfg` and write the report into `run_dir`; returns the summary (an empty dict on
    torchrun ranks other than 0, which return after the decoders)."""
    resolved = OmegaConf.to_container(OmegaConf.structured(cfg))
    if distributed.is_main():  # the one process that writes into the run folder and logs to wandb
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(resolved))
    # Every trained stage logs its curves live to this tracker's group, in whichever process it trains.
    tracking.activate(Tracker(cfg.logger, cfg.logger.group or tracking.default_group(cfg, run_dir), run_dir,
                              resolved, prefix=cfg.logger.run_prefix))
    ctx = build(Context.start(cfg, run_dir))
    return {} if ctx is None else ctx["report"].meta
