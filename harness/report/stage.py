"""The report stage: the run folder's report, figures, tables and summary, and their wandb run (`harness.report.dashboard`).

It reads the metrics artifact's tables and the sweep's cells (for the image grids and sheets) and writes
everything a reader opens into the run folder (`ctx.run_dir`): report.md, summary.json, curves.png, the grids
and sheets, and the tables the report is computed from (so the folder stands on its own, e.g. in results/).
It is not cached: it takes seconds, and its folder is the run's own.
"""

from __future__ import annotations

import json
import logging
import platform

import numpy as np
import torch

from harness.data.prompts import sweep_prompts
from harness.line import REAL
from harness.metrics import stage as metrics_stage
from harness.metrics.estimate import read_table
from harness.report import dashboard, figures
from harness.report.pilot import recipe_of
from harness.report.write import write_report
from harness.runtime.provenance import provenance
from harness.runtime.cache import Artifact
from harness.runtime.context import Context
from harness.sampling.cell import describe_arms
from harness.sampling.runner import load_cells
from harness.sampling.stage import CELLS

log = logging.getLogger(__name__)


def run(ctx: Context) -> Artifact:
    """Write the report of the context's metrics and sweep into `ctx.run_dir`; its artifact is that folder,
    its meta the summary."""
    cfg, run_dir, measured = ctx.cfg, ctx.run_dir, ctx["metrics"]
    run_dir.mkdir(parents=True, exist_ok=True)
    metrics = read_table(measured.file(metrics_stage.METRICS))
    per_prompt = read_table(measured.file(metrics_stage.PER_PROMPT))
    metrics.to_csv(run_dir / metrics_stage.METRICS, index=False)
    metrics.to_parquet(run_dir / metrics_stage.METRICS_PARQUET, index=False)
    per_prompt.to_csv(run_dir / metrics_stage.PER_PROMPT, index=False)
    cells = list(load_cells(ctx["sweep"].file(CELLS)))
    prompts = sweep_prompts(ctx)
    with np.load(ctx["sweep"].file(f"{REAL}.npz")) as references:
        real = dict(zip(references["prompt_ids"].tolist(), references["images"]))
    grids = {p.stem.removeprefix("grid_"): p for p in sorted(figures.write_grids(cells, prompts, cfg, run_dir, real))}
    sheets = {p.stem.removeprefix("sheet_"): p
              for p in sorted(figures.write_mode_sheets(cells, prompts, cfg, run_dir))}
    write_report(metrics, summary(ctx), run_dir, per_prompt, grids=grids, sheets=sheets, settings=cfg.report,
                 recipe=recipe_of(cfg))
    written = json.loads((run_dir / "summary.json").read_text())
    dashboard.track(ctx, run_dir, metrics, written)
    log.info("report: %s", run_dir / "report.md")
    return Artifact("report", "-", run_dir, written)


def summary(ctx: Context) -> dict:
    """What summary.json records besides the answers: the setup, the sampling arms, every artifact's figures and
    the wall times."""
    cfg, swept = ctx.cfg, ctx["sweep"]
    return {
        "experiment": cfg.experiment_name,
        "setup": {"data": cfg.data.source, "resolution": cfg.data.resolution,
                  "num_images": ctx["data"].meta["images"],
                  "decoder_size": cfg.decoder.size, "decoder_steps": cfg.decoder.train.steps,
                  "train_seeds": list(cfg.train_seeds), "modes": list(cfg.conditioning),
                  "sampler": cfg.sweep.sampler, "sample_steps": cfg.sweep.sample_steps,
                  "prompts_per_kind": cfg.sweep.prompts_per_kind, "samples_per_prompt": cfg.sweep.samples_per_prompt,
                  "unseen_prompts": swept.meta.get("unseen_prompts"), "machine": _machine(),
                  "device": str(ctx.device)},
        "provenance": provenance(),
        "arms": describe_arms(cfg),
        "mode_tags": {mode: mode_cfg.all_tags for mode, mode_cfg in cfg.conditioning.items()},
        "clip": ctx["clip"].meta, "eval_clip": ctx["eval_clip"].meta,
        **({"probe": ctx["probe"].meta} if "probe" in ctx else {}),
        "priors": {name: {"cosine": q["cosine"],
                          "retrieval": q.get("retrieval_top1", q.get("retrieval_own_image_top1"))}
                   for name, q in ctx["prior"].meta["quality"].items()},
        "decoders": {f"{m}/seed{s}": {k: v for k, v in a.meta.items() if k != "history"}
                     for (m, s), a in ctx.decoders().items()},
        # Sampling and the metrics apart: benchmarks count them separately.
        "sweep": {**swept.meta, "metrics_s": ctx["metrics"].meta.get("wall_time_s")},
        "wall_time_s": dict(ctx.clock.times) if ctx.clock else {},
        # Less than the stages' sum when tasks ran side by side.
        "wall_time_total_s": ctx.clock.wall() if ctx.clock else None,
    }


def _machine() -> str:
    gpu = f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads{gpu}"
