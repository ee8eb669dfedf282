"""The experiment pipeline of DESIGN.md section 2: each stage turns its config and upstream artifacts into a
cached artifact; this module only orders them and records what each cost."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from omegaconf import OmegaConf

from harness.cache import ArtifactCache
from harness.config import Config

log = logging.getLogger(__name__)
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def cache_for(cfg: Config) -> ArtifactCache:
    return ArtifactCache(Path(cfg.cache_dir) if cfg.cache_dir else PROJECT_ROOT / ".cache" / "artifacts")


def run(cfg: Config, run_dir: Path) -> dict:
    from harness.data import build as data_stage

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.structured(cfg)))
    cache = cache_for(cfg)
    timings: dict[str, float] = {}

    started = time.perf_counter()
    data = data_stage.run(cfg.data, cache)
    timings["data"] = round(time.perf_counter() - started, 2)
    log.info("data: %s (%s)", data.path, "reused" if data.reused else "built")

    summary = {"experiment": cfg.experiment_name, "wall_time_s": timings, "data": data.meta}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
