"""The experiment pipeline (docs/design.md, section 1): each stage turns its config and upstream artifacts into a
cached artifact; this module only orders them, hands each the artifacts it needs, and records the cost.

data -> clip -> embeddings -> prior -> decoder[mode, seed] -> sweep[mode x guidance x policy] -> metrics -> report
   \\-> probe, eval_clip (the evaluator, independent of the conditioning CLIP) ------------------^

Under torchrun every rank runs the stages up to the decoders (the trained ones with DDP, see
`harness.distributed`); then the other ranks return and rank 0 alone runs the sweep, the metrics and the
report. Those need no gradients and are cached cell by cell, and a rank waiting in a collective through
them could time out, so they are not split.
"""

from __future__ import annotations

import json
import logging
import platform
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from omegaconf import OmegaConf

from harness import distributed, parallel, tracking
from harness.cache import ArtifactCache
from harness.config import Config
from harness.device import resolve_device
from harness.errors import HarnessError
from harness.tracking import Tracker

log = logging.getLogger(__name__)
REPORT_FILES = ("report.md", "summary.json", "metrics.parquet", "metrics.csv", "per_prompt.csv", "config.yaml")
LINE_PLOT_METRICS = ("attribute_accuracy", "binding_accuracy", "clip_score", "fid", "free_entropy", "vendi",
                     "pairwise_distance", "recall")


def cache_for(cfg: Config) -> ArtifactCache:
    """The run's artifact cache; the CLI has made a relative `cache_dir` absolute from the launch folder."""
    return ArtifactCache(Path(cfg.cache_dir))


class StageClock:
    """Wall time per stage, and a one-line progress display: the stage, its position, the time so far.

    A stage that runs several tasks side by side (`harness.parallel`) records each task's own time instead of
    its wall time, so `times` sums to more than the wall clock when workers > 1; `wall()` is the real total.
    """

    def __init__(self, names: list[str]) -> None:
        self.names, self.started = names, time.perf_counter()
        self.times: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str, label: str | None = None) -> Iterator[dict[str, float]]:
        """Yields a dict the stage may fill with its tasks' times; left empty, the stage's wall time counts."""
        position = self.names.index(name) + 1 if name in self.names else len(self.names)
        log.info("[%d/%d] %s ... (%.0f s elapsed)", position, len(self.names), label or name,
                 time.perf_counter() - self.started)
        start, tasks = time.perf_counter(), {}
        yield tasks
        self.times.update(tasks or {label or name: round(time.perf_counter() - start, 2)})

    def wall(self) -> float:
        return round(time.perf_counter() - self.started, 2)


def run(cfg: Config, run_dir: Path) -> dict:
    """Run every stage of `cfg` and write the report into `run_dir`; returns the summary (an empty dict on
    torchrun ranks other than 0, which return after the decoders)."""
    from harness import sweep as sweep_stage
    from harness.clip import embeddings as embeddings_stage
    from harness.conditioning.base import mode_class
    from harness.data import build as data_stage
    from harness.data.world import ShapesWorld, prompts_by_kind
    from harness.decoder import stage as decoder_stage
    from harness.evaluator import eval_clip as eval_clip_stage, probe as probe_stage
    from harness.metrics import table as metrics_table
    from harness.report import figures
    from harness.report.estimate import Sweep, read_table
    from harness.report.write import write_report
    from harness.sweep_inputs import SweepInputs

    if cfg.data.source != "shapes":
        raise HarnessError("data: the sweep and report need the shapes world's prompts and judge for now; "
                           "data=hf is supported by the data, clip and prior stages")
    main = distributed.is_main()  # the one process that writes into the run folder and logs to wandb
    resolved = OmegaConf.to_container(OmegaConf.structured(cfg))
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(resolved))
    cache, device = cache_for(cfg), resolve_device(cfg.device)
    # Every trained stage logs its curves live to this tracker's group, in whichever process it trains.
    tracker = Tracker(cfg.logger, cfg.logger.group or tracking.default_group(cfg, run_dir), run_dir, resolved,
                      prefix=cfg.logger.run_prefix)
    tracking.activate(tracker)
    clock = StageClock(["data", "clip", "decoder", "sweep", "report"])

    with clock.stage("data"):
        data = data_stage.run(cfg.data, cache)
    # Stages that do not feed each other run side by side when cfg.workers > 1 (harness.parallel), each process
    # reporting its progress as log lines.
    # The prior needs only the CLIP's embeddings, so it trains in the first phase behind the CLIP, beside the
    # evaluator, rather than in the decoders' phase, where it left a worker idle at the end.
    with clock.stage("clip", "clip -> embeddings -> prior, probe, eval_clip") as task_times:
        built, seconds = parallel.run_tasks({"clip": (_conditioning_chain, (cfg, cache, data)),
                                             "probe": (probe_stage.run, (cfg, cache, data)),
                                             "eval_clip": (eval_clip_stage.run, (cfg, cache, data))},
                                            cfg.workers, labels=_task_label, desc="clip, probe, eval_clip")
        task_times.update({_task_label(key): s for key, s in seconds.items()})
    (clip, embeddings, priors), probe, eval_clip = built["clip"], built["probe"], built["eval_clip"]

    context = decoder_stage.clip_context(clip, embeddings, device, cfg.precision)
    train_split = embeddings_stage.load_embeddings(embeddings)["train"]
    tasks: dict = {(mode, seed): (decoder_stage.run, (cfg, cache, data, embeddings, train_split, context,
                                                      mode, seed))
                   for mode in cfg.conditioning for seed in cfg.seeds_for(mode)}
    with clock.stage("decoder", "decoders") as task_times:
        decoders, seconds = parallel.run_tasks(tasks, cfg.workers, labels=_task_label, desc="decoders")
        task_times.update({_task_label(key): s for key, s in seconds.items()})
    if not distributed.release_workers():
        return {}

    world = ShapesWorld(cfg.data.shapes, cfg.data.resolution)
    train_captions = set(data_stage.load_split(data, "train").captions)
    prompts = prompts_by_kind(world, cfg.sweep.prompt_kinds, cfg.sweep.prompts_per_kind, cfg.sweep.seed,
                              avoid=train_captions)
    unseen = sum(p.caption not in train_captions for p in prompts)
    inputs = SweepInputs(cfg, prompts, clip, embeddings, probe, eval_clip, priors, decoders)
    policies, token_groups = {}, {}
    for mode in cfg.conditioning:
        mode_cls = mode_class(cfg.conditioning[mode].module)
        is_prior_mode = mode_cls.vector_source == "image" and mode_cls.sampling_vector == "prior"
        policies[mode] = list(cfg.conditioning[mode].prior_draws) if is_prior_mode else ["-"]
        token_groups[mode] = mode_cls.token_group_names(cfg.conditioning[mode])

    def finish(workdir: Path) -> dict:
        cells = list(sweep_stage.load_cells(workdir / "cells"))
        groups = metrics_table.assemble_groups(cells, len(prompts))
        with np.load(workdir / f"{sweep_stage.REAL}.npz") as raw:
            real = metrics_table.real_group(dict(raw))
        text_embeddings = inputs.judge().embed_texts([p.caption for p in prompts]).cpu().numpy()
        per_prompt = metrics_table.build_table(groups, real, prompts, world, text_embeddings, cfg.workers)
        table = Sweep(per_prompt, cfg.report.confidence).rows(cfg.sweep.samples_per_prompt)
        table.to_csv(workdir / "metrics.csv", index=False)
        table.to_parquet(workdir / "metrics.parquet", index=False)
        per_prompt.to_csv(workdir / "per_prompt.csv", index=False)
        figures.write_grids(cells, prompts, cfg, workdir)
        figures.write_mode_sheets(cells, prompts, cfg, workdir)
        return {"prompts": len(prompts), "unseen_prompts": unseen}

    with clock.stage("sweep"):
        swept = sweep_stage.run(cfg, cache, inputs.runner, policies, len(prompts),
                                [data, clip, probe, eval_clip, priors, *decoders.values()], finish, token_groups)
    for name in ("metrics.csv", "metrics.parquet", "per_prompt.csv", *[p.name for p in swept.path.glob("grid_*.png")],
                 *[p.name for p in swept.path.glob("sheet_*.png")]):
        shutil.copy2(swept.file(name), run_dir / name)

    metrics = read_table(run_dir / "metrics.csv")

    summary = {
        "experiment": cfg.experiment_name,
        "setup": {"data": cfg.data.source, "resolution": cfg.data.resolution, "num_images": cfg.data.num_images,
                  "decoder_size": cfg.decoder.size, "decoder_steps": cfg.decoder.train.steps,
                  "train_seeds": list(cfg.train_seeds), "modes": list(cfg.conditioning),
                  "sampler": cfg.sweep.sampler, "sample_steps": cfg.sweep.sample_steps,
                  "prompts_per_kind": cfg.sweep.prompts_per_kind, "samples_per_prompt": cfg.sweep.samples_per_prompt,
                  "unseen_prompts": swept.meta.get("unseen_prompts"), "machine": _machine(), "device": str(device)},
        "clip": clip.meta, "probe": probe.meta, "eval_clip": eval_clip.meta,
        "priors": {name: {"cosine": q["cosine"], "retrieval": q.get("retrieval_top1", q.get("retrieval_own_image_top1"))}
                   for name, q in priors.meta["quality"].items()},
        "decoders": {f"{m}/seed{s}": {k: v for k, v in a.meta.items() if k != "history"}
                     for (m, s), a in decoders.items()},
        "sweep": {k: v for k, v in swept.meta.items()},
    }
    with clock.stage("report"):
        summary["wall_time_s"] = dict(clock.times)
        summary["wall_time_total_s"] = clock.wall()  # less than the stages' sum when tasks ran side by side
        grids = {p.stem.removeprefix("grid_"): p for p in sorted(run_dir.glob("grid_*.png"))}
        sheets = {p.stem.removeprefix("sheet_"): p for p in sorted(run_dir.glob("sheet_*.png"))}
        write_report(metrics, summary, run_dir, read_table(run_dir / "per_prompt.csv"), grids=grids,
                     sheets=sheets, settings=cfg.report)
    summary = json.loads((run_dir / "summary.json").read_text())
    _track_report(tracker, run_dir, metrics, summary)
    log.info("report: %s", run_dir / "report.md")
    return summary


def _track_report(tracker: Tracker, run_dir: Path, metrics, summary: dict) -> None:
    """The sweep and report as one wandb run: the metrics table and line plots, the figures as images, the
    answers and key figures in its summary, and the report's files as an artifact."""
    from harness import sweep as sweep_stage

    with tracker.run("sweep and report", "report") as tracked:
        tracked.log_table("metrics", metrics)
        curves = metrics[(metrics["prompt_kind"] == "all") & (metrics["mode"] != sweep_stage.REAL)].copy()
        curves["line"] = curves["mode"] + curves["prior_draw"].map(lambda d: "" if d == "-" else f" ({d})")
        wide = curves.pivot_table(index=["line", "guidance", "train_seed"], columns="metric", values="value")
        tracked.log_line_plots(wide.reset_index(), x="guidance", series="line",
                               metrics=[m for m in LINE_PLOT_METRICS if m in wide.columns])
        figures = sorted(run_dir.glob("*.png"))
        for figure in figures:
            tracked.log_image(figure.stem, figure)
        tracked.summary({key: summary[key] for key in ("answers", "setup", "wall_time_total_s", "priors")
                         if key in summary})
        tracked.log_files("report", "report", [run_dir / name for name in REPORT_FILES] + figures)


def _conditioning_chain(cfg: Config, cache: ArtifactCache, data):
    """The conditioning CLIP, its embeddings of the data and the prior on them: one task, each needing the last."""
    from harness.clip import embeddings as embeddings_stage, stage as clip_stage
    from harness.priors import stage as prior_stage

    clip = clip_stage.run(cfg, cache, data)
    embeddings = embeddings_stage.run(cfg, cache, data, clip)
    return clip, embeddings, prior_stage.run(cfg, cache, data, embeddings)


def _task_label(key) -> str:
    if key == "clip":
        return "clip -> embeddings -> prior"
    return key if isinstance(key, str) else f"decoder[{key[0]} seed {key[1]}]"


def _machine() -> str:
    gpu = f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads{gpu}"
