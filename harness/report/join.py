"""One report for several jobs: the hard-negative CLIP comparison of question 5 needs two runs, and a study's
training seeds shard over jobs (`train_seeds=[0,1],[2,3],...`) that pool into one table.

A run trains one conditioning CLIP, so "does a CLIP trained with hard-negative captions bind better?" is answered
by two jobs of a multirun (`clip.hard_negatives=false,true`), each with its own run folder and report. This
module joins their folders into one: the jobs' metrics.csv and per_prompt.csv stacked, the lines of a job with
the hard-negative CLIP marked in their `clip_variant` column (`clip_text [hard_negatives]`), so that `q5_binding`
compares each of them with the same line under the standard CLIP. The real-image ceiling is kept once.

Jobs sharded by training seed simply stack: each row carries its seed, so the joint report's intervals are over
every job's seeds and prompts. Jobs join only when they were scored on the same prompts by the same evaluator
(`PROMPT_KEYS`) and no two of them measured the same mode with the same CLIP variant and training seed; otherwise
the join is refused in one line.

    python -m harness.report.join OUT_DIR RUN_DIR RUN_DIR...
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from harness.errors import HarnessError, print_or_exit
from harness.line import COLUMNS as LINE_COLUMNS, NONE, REAL, Line
from harness.metrics.estimate import read_table, table_file
from harness.report.pilot import recipe_of
from harness.report.write import report_settings, write_report

STANDARD, HARD_NEGATIVES = "standard", "hard_negatives"
CONFIG = "config.yaml"  # the resolved config the pipeline writes into each run folder
REQUIRED = ("metrics.csv", "per_prompt.csv", "summary.json", CONFIG)
# The settings that choose the evaluation prompts and score their real images: jobs that differ in any of them
# were measured on different prompts (or against a different ceiling), and their numbers do not compare.
PROMPT_KEYS = ("data", "evaluator", "sweep.prompt_kinds", "sweep.prompts_per_kind", "sweep.samples_per_prompt",
               "sweep.seed")


def clip_variant(config: DictConfig) -> str:
    """`hard_negatives` when the job's conditioning CLIP was trained with hard-negative captions, else `standard`."""
    return HARD_NEGATIVES if OmegaConf.select(config, "clip.hard_negatives", default=False) else STANDARD


def missing_result(folder: Path) -> str | None:
    """The first file a finished job leaves in its run folder that `folder` lacks (None when it has them all)."""
    return next((name for name in REQUIRED if table_file(folder, name) is None), None)


@dataclass(frozen=True)
class Job:
    """One job's run folder, read: its tables, summary and resolved config."""

    index: int  # position in the join, for names that say which job a figure comes from
    folder: Path
    config: DictConfig
    summary: dict
    metrics: pd.DataFrame
    per_prompt: pd.DataFrame

    @property
    def variant(self) -> str:
        return clip_variant(self.config)

    @property
    def label(self) -> str:
        return f"job {self.index} ({self.variant} CLIP)"

    @property
    def modes(self) -> list[str]:
        """The modes the job measured, in the order of its table (the real ceiling is none)."""
        lines = self.metrics[list(LINE_COLUMNS)].drop_duplicates()
        return list(dict.fromkeys(line.mode for line in map(Line.of, lines.to_dict("records")) if not line.is_real))


    @property
    def decoders(self) -> list[tuple[str, str]]:
        """(mode, training seed) of every decoder the job sampled: jobs of one study sharded by seed each hold
        some seeds of the same modes, and pool into one table with seed-level intervals."""
        table = self.per_prompt[["mode", "train_seed"]].drop_duplicates().astype(str)
        return [(m, s) for m, s in table.itertuples(index=False) if m in set(self.modes)]


def load_job(index: int, folder: Path) -> Job:
    folder = Path(folder)
    missing = missing_result(folder)
    if missing:
        raise HarnessError(f"{folder / missing}: not found; a job folder needs {', '.join(REQUIRED)} "
                           "(did the job finish?)")
    return Job(index, folder, OmegaConf.load(folder / CONFIG), json.loads((folder / "summary.json").read_text()),
               read_table(table_file(folder, "metrics.csv")), read_table(table_file(folder, "per_prompt.csv")))


# ---------------------------------------------------------------- checks


def prompt_settings(config: DictConfig) -> dict[str, Any]:
    """The `PROMPT_KEYS` of a config, flattened to dotted keys (`data.shapes.num_colors`) so a difference is named."""
    chosen = OmegaConf.to_container(OmegaConf.create({key: OmegaConf.select(config, key) for key in PROMPT_KEYS}))
    return pd.json_normalize(chosen, sep=".").iloc[0].to_dict()


def check_same_prompts(reference: Path, expected: DictConfig, folder: Path, config: DictConfig,
                       why: str = "the jobs were scored on different prompts") -> None:
    """Refuse, naming the setting and both folders, a run scored on other prompts than `reference`'s: prompt ids
    are positions in the sweep's prompt list, so numbers of runs with other prompt settings do not pair."""
    want, have = prompt_settings(expected), prompt_settings(config)
    key = next((k for k in sorted(set(want) | set(have)) if have.get(k) != want.get(k)), None)
    if key is not None:
        raise HarnessError(f"{folder / CONFIG}: {key} is {have.get(key)!r}, but {want.get(key)!r} in "
                           f"{reference / CONFIG}; {why}")


def check_joinable(jobs: Sequence[Job]) -> None:
    """Refuse, naming the folder, jobs scored on other prompts than the first job's, and a (mode, CLIP variant)
    measured twice: the joint report would not know which of the two to show."""
    first = jobs[0]
    measured: dict[tuple[str, str], Job] = {}
    for job in jobs:
        check_same_prompts(first.folder, first.config, job.folder, job.config)
        for mode, seed in job.decoders:
            other = measured.setdefault((mode, job.variant, seed), job)
            if other is not job:
                raise HarnessError(f"{job.folder}: measured {mode} with the {job.variant} CLIP and training seed "
                                   f"{seed}, as {other.folder} did; the joint report would not know which to show "
                                   "(join one of the two)")


# ---------------------------------------------------------------- the joint tables, summary and images


def stack(tables: Sequence[pd.DataFrame], variants: Sequence[str]) -> pd.DataFrame:
    """The jobs' rows, the lines of a job with another CLIP than the standard one marked in `clip_variant`, the
    real ceiling once (from the first table that has it): jobs scored on the same prompts by the same evaluator
    have identical real rows."""
    parts, have_real = [], False
    for table, variant in zip(tables, variants):
        real = table["mode"].astype(str) == REAL
        part = table[~real] if have_real else table
        marked = NONE if variant == STANDARD else variant
        parts.append(part.assign(clip_variant=np.where(part["mode"].astype(str) == REAL, NONE, marked)))
        have_real = have_real or bool(real.any())
    return pd.concat(parts, ignore_index=True)


def joint_setup(jobs: Sequence[Job]) -> dict[str, Any]:
    """The jobs' setup: a value where they all agree, a {job: value} mapping where they differ (modes, seeds...)."""
    setups = [job.summary.get("setup") or {} for job in jobs]
    joint: dict[str, Any] = {}
    for key in dict.fromkeys(k for setup in setups for k in setup):
        values = [setup.get(key) for setup in setups]
        joint[key] = values[0] if all(v == values[0] for v in values) else {
            job.label: v for job, v in zip(jobs, values)}
    return joint


def joint_summary(jobs: Sequence[Job]) -> dict[str, Any]:
    """The first job's summary (its evaluator and sweep figures stand for every job: `check_joinable` made sure
    they share prompts and evaluator), with what each job has of its own listed per job: its CLIP, priors,
    decoders and wall time. The answers are left to `write_report`, which computes them from the joint tables."""
    def per_job(key: str) -> dict[str, Any]:
        return {job.label: job.summary[key] for job in jobs if job.summary.get(key)}

    summary = {k: v for k, v in jobs[0].summary.items() if k not in ("answers", "wall_time_s", "wall_time_total_s")}
    times = [job.summary.get("wall_time_total_s") for job in jobs]
    summary.update(
        # What any job sampled and how each mode is tagged, every job's (an arm or mode of one job only included).
        arms={name: info for job in reversed(jobs) for name, info in (job.summary.get("arms") or {}).items()},
        mode_tags={mode: tags for job in reversed(jobs) for mode, tags in (job.summary.get("mode_tags") or {}).items()},
        experiment=" + ".join(dict.fromkeys(str(job.summary.get("experiment", job.folder.name)) for job in jobs)),
        setup=joint_setup(jobs),
        clip=per_job("clip"),
        decoders=per_job("decoders"),
        priors={f"{name}, {job.label}": quality for job in jobs
                for name, quality in (job.summary.get("priors") or {}).items()},
        jobs=[{"job": job.label, "folder": str(job.folder), "clip": job.variant, "modes": job.modes,
               "wall_time_total_s": t} for job, t in zip(jobs, times)],
        jobs_wall_time_total_s=sum(times) if all(isinstance(t, (int, float)) for t in times) else None,
    )
    return summary


def copy_images(jobs: Sequence[Job], out_dir: Path, prefix: str) -> dict[str, Path]:
    """Each job's `<prefix>*.png` copied into `out_dir` under a name that says its job and CLIP variant
    (`grid_full_job1_hard_negatives.png`), by report label; the same figure of every job side by side."""
    found = [(image.stem.removeprefix(prefix), job, image) for job in jobs
             for image in sorted(job.folder.glob(f"{prefix}*.png"))]
    copies = {}
    for name, job, image in sorted(found, key=lambda item: (item[0], item[1].index)):
        copies[f"{name}, {job.label}"] = Path(shutil.copy2(image, out_dir / f"{prefix}{name}_job{job.index}_"
                                                                          f"{job.variant}.png"))
    return copies


def join_runs(run_dirs: Sequence[Path], out_dir: Path) -> Path:
    """Write one report for the jobs in `run_dirs` into `out_dir` (report.md, curves.png, summary.json, the joint
    metrics.csv and per_prompt.csv, the jobs' grids and sheets renamed by job); returns the path of report.md.

    A run trains one CLIP, so comparing CLIP variants (question 5) takes several jobs, and only a table holding
    all of them can set the hard-negative CLIP's lines against the standard CLIP's. The jobs' folders are read,
    never written."""
    folders, out_dir = [Path(d) for d in run_dirs], Path(out_dir)
    if len(folders) < 2:
        raise HarnessError("a joint report needs at least two job folders")
    if any(out_dir.resolve() == folder.resolve() for folder in folders):
        raise HarnessError(f"{out_dir}: is one of the job folders; the joint report would overwrite that job's "
                           "report, choose another folder")
    jobs = [load_job(i, folder) for i, folder in enumerate(folders)]
    check_joinable(jobs)
    variants = [job.variant for job in jobs]
    metrics = stack([job.metrics for job in jobs], variants)
    per_prompt = stack([job.per_prompt for job in jobs], variants)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics.to_csv(out_dir / "metrics.csv", index=False)
    per_prompt.to_csv(out_dir / "per_prompt.csv", index=False)
    recipes = [recipe_of(job.config) for job in jobs]
    return write_report(metrics, joint_summary(jobs), out_dir, per_prompt,
                        grids=copy_images(jobs, out_dir, "grid_"), sheets=copy_images(jobs, out_dir, "sheet_"),
                        settings=report_settings(jobs[0].config),
                        recipe=recipes[0] if all(r == recipes[0] for r in recipes) else None)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="unclip-harness join",
        description="Join the run folders of several jobs (e.g. a standard and a hard-negative CLIP) into one "
                    "report.")
    parser.add_argument("out_dir", type=Path, help="folder for the joint report (created when missing)")
    parser.add_argument("run_dirs", type=Path, nargs="+", help="the jobs' run folders, the first one's setup leads")
    args = parser.parse_args(argv)
    print_or_exit(lambda: join_runs(args.run_dirs, args.out_dir))


if __name__ == "__main__":
    main()
