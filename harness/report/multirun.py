"""After a multirun whose jobs trained different CLIP variants or different training seeds of one study, their
joint report in `<sweep dir>/joint/`: a study shards its seeds over jobs (`train_seeds=[0,1],[2,3],...`, with the
joblib launcher here or submitit on a cluster, every job building its seeds into the shared cache), and the joint
report's intervals are over all of them.

Registered in conf/config.yaml under `hydra.callbacks`; Hydra calls `on_multirun_end` on the launching machine
once every job has returned. A multirun over other keys (the jobs share their CLIP variant and seeds) is left
exactly as it was. The jobs' folders are only read, and a join that fails is logged in one line:
after hours of jobs, their own reports are complete and a traceback here would only hide that.
"""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from harness.errors import HarnessError
from harness.report.join import CONFIG, clip_variant, join_runs, missing_result

JOINT = "joint"
log = logging.getLogger(__name__)


def job_folders(sweep_dir: Path) -> list[Path]:
    """The folders Hydra ran a job in (each holds `.hydra/`), in job-number order: `10_...` after `9_...`."""
    def number(folder: Path) -> tuple[float, str]:
        digits = re.match(r"\d+", folder.name)
        return (int(digits.group()) if digits else math.inf), str(folder)

    return sorted((marker.parent for marker in Path(sweep_dir).rglob(".hydra") if marker.is_dir()), key=number)


def shard(config: DictConfig) -> tuple[str, str]:
    """What tells the jobs of one study apart: their CLIP variant and the training seeds they built."""
    seeds = {"all": OmegaConf.to_container(config["train_seeds"]) if config.get("train_seeds") is not None else None,
             **{mode: OmegaConf.to_container(node["train_seeds"])
                for mode, node in (config.get("conditioning") or {}).items() if node.get("train_seeds") is not None}}
    return clip_variant(config), json.dumps(seeds, sort_keys=True)


def join_study_jobs(sweep_dir: Path) -> Path | None:
    """Join the finished jobs under `sweep_dir` into `<sweep_dir>/joint/` when their CLIP variants or their
    training seeds differ (one study split over jobs); returns the joint report.md, or None when the jobs differ
    in neither (nothing to pool: a sweep over other keys)."""
    folders = job_folders(sweep_dir)
    shards = {folder: shard(OmegaConf.load(folder / CONFIG)) for folder in folders if (folder / CONFIG).is_file()}
    if len(set(shards.values())) < 2:
        return None
    finished = []
    for folder in folders:
        missing = missing_result(folder)
        if missing:
            log.warning("joint report: skipping %s: no %s (the job did not finish)", folder, missing)
        else:
            finished.append(folder)
    if len({shards[folder] for folder in finished}) < 2:
        raise HarnessError(f"{sweep_dir}: fewer than two of the jobs finished; nothing to join")
    return join_runs(finished, Path(sweep_dir) / JOINT)


class JoinStudyJobs(Callback):
    """The Hydra callback: `join_study_jobs` on the multirun's sweep folder, errors logged in one line."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            report = join_study_jobs(sweep_dir)
        except Exception as exc:  # whatever failed, the jobs' own outputs are complete: say so and go on
            reason = str(exc) if isinstance(exc, HarnessError) else f"{type(exc).__name__}: {exc}"
            log.error("joint report not written: %s (join later with python -m harness.report.join)",
                      reason.splitlines()[0])
            return
        if report is not None:
            log.info("joint report of the CLIP variants: %s", report)
