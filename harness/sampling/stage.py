"""The sweep stage (docs/questions.md; docs/design.md, section 5): every cell of the plan
(`harness.sampling.cell`), sampled and judged, and the real references.

Each cell is saved atomically as soon as it finishes, inside the sweep artifact's resumable work folder; a killed
sweep restarts, finds the finished cells and computes only the rest.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from harness.config import MODE_KEYS, Config, key_fields
from harness.data.prompts import SweepPrompt, sweep_prompts, train_captions
from harness.line import REAL
from harness.runtime import parallel
from harness.runtime.cache import Artifact
from harness.runtime.context import Context
from harness.runtime.device import effective_precision
from harness.sampling.cell import Cell, mode_plans, plan
from harness.sampling.load import load_runner

log = logging.getLogger(__name__)
VERSION = "8"  # 7: the line in the cell, files named by a digest of the key; 8: where the vectors sit
CELLS = "cells"  # the sweep artifact's folder of finished cells


def sweep_config(cfg: Config, modes: list[str]) -> dict:
    """What keys the sweep: the fields the schema marks for it (the sweep's settings, each mode's and arm's),
    each mode's training seeds and the precision."""
    return {**key_fields(cfg, "sweep"), "train_seeds": {m: cfg.seeds_for(m) for m in modes},
            "precision": effective_precision(cfg.device, cfg.precision),
            "modes": {m: key_fields(cfg.conditioning[m], "sweep", MODE_KEYS) for m in modes},
            "arms": {a: key_fields(cfg.arms[a], "sweep", ("sweep",)) for a in cfg.arms}}


def run(ctx: Context) -> Artifact:
    """The sweep artifact: every cell of `plan` in `cells/` and the real references in `real.npz`.

    The missing cells are sampled in one task per decoder, the longest first, in `cfg.workers` processes
    (`harness.runtime.parallel`); each task loads its own runner from the context. A cell is written when it is done,
    so a killed sweep keeps every finished cell whichever worker made it.
    """
    cfg = ctx.cfg
    prompts = sweep_prompts(ctx)
    modes = mode_plans(cfg)
    cells = plan(cfg, modes, len(prompts))
    upstream = [ctx[name] for name in ("data", "clip", "prior", "probe", "eval_clip") if name in ctx]
    upstream += ctx.decoders().values()

    def build(workdir: Path) -> dict:
        started = time.perf_counter()
        cell_dir, real = workdir / CELLS, workdir / f"{REAL}.npz"
        todo = [c for c in cells if not (cell_dir / f"{c.name}.npz").exists()]
        log.info("sweep: %d cells, %d reused from an earlier run, %d to compute", len(cells),
                 len(cells) - len(todo), len(todo))
        by_decoder: dict[tuple[str, int], list[Cell]] = {}
        for cell in todo:
            by_decoder.setdefault((cell.line.mode, cell.seed), []).append(cell)
        tasks: dict = {key: (_sample_cells, (ctx, prompts, group, cell_dir)) for key, group in by_decoder.items()}
        costs = {key: len(group) for key, group in by_decoder.items()}  # cells: the references cost next to none
        if not real.exists():
            tasks[REAL], costs[REAL] = (_sample_references, (ctx, prompts, real)), 0
        parallel.run_tasks(tasks, cfg.workers, labels=_task_label, desc="sweep tasks", costs=costs)
        seen = train_captions(ctx)
        by_arm: dict[str, float] = {}
        for cell in cells:  # each cell's own sampling time, summed per arm (reused cells keep theirs)
            with np.load(cell_dir / f"{cell.name}.npz") as data:
                by_arm[cell.line.arm] = by_arm.get(cell.line.arm, 0.0) + float(data["sampling_s"])
        return {"cells": len(cells), "cells_computed": len(todo), "cells_reused": len(cells) - len(todo),
                "prompts": len(prompts), "unseen_prompts": sum(p.caption not in seen for p in prompts),
                "sampling_s": round(time.perf_counter() - started, 2),
                "sampling_s_by_arm": {arm: round(seconds, 1) for arm, seconds in by_arm.items()}}

    return ctx.cache.build("sweep", VERSION, sweep_config(cfg, list(modes)), upstream, build)


def _sample_cells(ctx: Context, prompts: list[SweepPrompt], cells: list[Cell], cell_dir: Path) -> int:
    return load_runner(ctx, prompts).run(cells, cell_dir)


def _sample_references(ctx: Context, prompts: list[SweepPrompt], path: Path) -> None:
    load_runner(ctx, prompts).references(path)


def _task_label(key: tuple[str, int] | str) -> str:
    return f"sweep[{key}]" if isinstance(key, str) else f"sweep[{key[0]} seed {key[1]}]"
