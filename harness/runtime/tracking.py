"""A thin wrapper over wandb: one run per trained artifact and one for the sweep and report, grouped by
invocation (every run of one `unclip-harness ...` command, all jobs of a multirun included, share a group).

`logger.mode` decides everything (empty: the environment's WANDB_MODE, else offline; likewise `logger.project`
and `logger.dir` yield to WANDB_PROJECT and WANDB_DIR when empty):
- `offline` (default): wandb writes its run folders under `<logger.dir or run_dir>/wandb/` and never touches
  the network; `wandb sync <folder>` uploads them later;
- `online`: the same, synced to the wandb server as it runs;
- `disabled`: wandb is never imported and nothing is written; every logging call is a no-op.

A run opened inside a cache build (a trained stage's) takes that artifact's own config (its stage, cache key,
inputs and the settings that key it: a decoder's mode, seed and recipe) rather than the global one, is tagged
with the experiment, stage, mode and seed, and logs the artifact at its end, named `<stage>-<key>`, its folder
and inputs in the metadata. Online each input is declared with `use_artifact`, which draws wandb's artifact
graph; offline wandb refuses that, so the report's run logs every artifact the run read as a record with its
inputs, and the lineage from the data and the CLIP to the report is read from those records.

The pipeline makes its tracker the process's active one (`activate`), and worker processes activate the same
one, so the training loop logs live curves wherever it runs:
    with active().run("decoder[glide seed 0]", job_type="train") as run:
        run.on_log(step, record)
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

from harness.config import Config, LoggerConfig
from harness.errors import ConfigError
from harness.runtime.cache import Artifact, Build, current_build

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# wandb runs open in this process; the service process is shut down when the last one closes, so no wandb
# process outlives a `with tracker.run(...)` block (forked workers and interpreter exit never wait on it).
_open_runs = 0
_active: "Tracker | None" = None

# Read by wandb when its process context starts; why offline needs them is told in `Tracker.run`.
_OFFLINE_ENV = {"WANDB_ERROR_REPORTING": "false", "WANDB_DISABLE_GIT": "true"}
WANDB_MODES = {"dryrun": "offline", "run": "online"}  # wandb's older names for its modes


class TrackerRun:
    """One wandb run, or nothing at all when tracking is disabled (`wandb_run is None`)."""

    def __init__(self, wandb_run: Any | None, online: bool = False) -> None:
        self._run = wandb_run
        self._online = online

    @property
    def dir(self) -> Path | None:
        """The run's folder (holding `run-<id>.wandb` and `files/`); None when disabled."""
        return Path(self._run.dir).parent if self._run is not None else None

    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        if self._run is not None:
            self._run.log(dict(metrics), step=step)

    def on_log(self, step: int, record: Mapping[str, Any]) -> None:
        """The training loop's `on_log(step, record)` callback: `train(..., on_log=run.on_log)`."""
        # The record repeats its step; wandb already keeps it as `_step`, so it would only add a flat chart.
        self.log({k: v for k, v in record.items() if k != "step"}, step=step)

    def log_table(self, name: str, frame: pd.DataFrame) -> None:
        if self._run is not None:
            import wandb
            self._run.log({name: wandb.Table(dataframe=frame)})

    def log_image(self, name: str, image: str | Path | np.ndarray, caption: str | None = None) -> None:
        """An image file (PNG, JPEG) or an HxW / HxWxC array."""
        if self._run is not None:
            import wandb
            self._run.log({name: wandb.Image(image, caption=caption)})

    def log_line_plots(self, frame: pd.DataFrame, *, x: str, series: str, metrics: Sequence[str]) -> None:
        """One line chart per metric of a long table (`metric`, `value`, optional `ci_low` and `ci_high`):
        `value` against `x` with a line per value of `series`, and its interval's bounds as two more lines
        (`<series> low`, `<series> high`).

        For the sweep: `x="guidance", series="line"`. Rows sharing (series, x) are averaged; missing values are
        left out. Each chart is logged under `<metric>_vs_<x>` and its points as the table
        `<metric>_vs_<x>_table`, which is also how offline runs keep them.
        """
        if self._run is None:
            return
        for metric in metrics:
            rows = frame[frame["metric"] == metric]
            self._line_series(rows, x, "value", series, f"{metric}_vs_{x}", f"{metric} vs {x}")

    def log_curves(self, points: pd.DataFrame, *, x: str, series: str, key: str, title: str) -> None:
        """`value` against the column `x` (another measure, not a setting), a line per value of `series` through
        its points, and the interval's bounds (`ci_low`, `ci_high`) as two more lines: e.g. the report's
        fidelity-diversity curves, logged under `key`."""
        if self._run is not None:
            self._line_series(points, x, "value", series, key, title)

    def _line_series(self, rows: pd.DataFrame, x: str, y: str, series: str, key: str, title: str) -> None:
        import wandb
        xs, ys, labels = [], [], []
        for name, group in rows.groupby(series, sort=True):
            points = group.groupby(x, sort=True)[[c for c in (y, "ci_low", "ci_high") if c in group]].mean()
            for column, suffix in ((y, ""), ("ci_low", " low"), ("ci_high", " high")):
                if column in points and points[column].notna().any():
                    kept = points[column].dropna()
                    xs.append([float(v) for v in kept.index])
                    ys.append([float(v) for v in kept.values])
                    labels.append(f"{name}{suffix}")
        if labels:
            self._run.log({key: wandb.plot.line_series(xs=xs, ys=ys, keys=labels, title=title, xname=x)})

    def summary(self, values: Mapping[str, Any]) -> None:
        if self._run is not None:
            self._run.summary.update(dict(values))

    def log_files(self, name: str, kind: str, files: Sequence[Path], inputs: Sequence[Artifact] = ()) -> None:
        """Files as one wandb artifact `name` of type `kind` (offline runs keep it until `wandb sync`), made
        from `inputs` (cache artifacts)."""
        if self._run is not None:
            import wandb
            artifact = wandb.Artifact(name, type=kind, metadata={"inputs": sorted(a.name for a in inputs)})
            for path in files:
                artifact.add_file(str(path))
            self._declare_inputs([a.path for a in inputs])
            self._run.log_artifact(artifact)

    def log_built(self, artifact: Artifact) -> None:
        """The cache artifact this run built, as the wandb artifact `<stage>-<key>` (`_cache_artifact`: nothing is
        copied), its inputs' names in its metadata and, online, declared as used."""
        if self._run is not None:
            root = artifact.path.parent.parent  # <cache>/<stage>/<key>: the inputs sit beside it
            self._declare_inputs([root.joinpath(*name.rsplit("-", 1)) for name in artifact.inputs])
            self._run.log_artifact(_cache_artifact(artifact.path, artifact.inputs))

    def log_read(self, artifacts: Sequence[Artifact]) -> None:
        """Cache artifacts this run read. Online they are declared as used: wandb's graph then runs from each
        artifact's producing run to this one. Offline a run cannot use an artifact (wandb refuses), so each is
        logged as a record with its inputs' names, and the lineage is read from those records."""
        if self._run is None:
            return
        if self._online:
            self._declare_inputs([a.path for a in artifacts])
            return
        for artifact in artifacts:
            self._run.log_artifact(_cache_artifact(artifact.path, artifact.inputs))

    def _declare_inputs(self, folders: Sequence[Path]) -> None:
        if self._online:
            for folder in folders:
                self._run.use_artifact(_cache_artifact(folder))


def _cache_artifact(folder: Path, inputs: Sequence[str] = ()) -> Any:
    """The wandb artifact of the cache folder `<cache>/<stage>/<key>`: its identity, folder and inputs in the
    metadata, no files (the weights stay in the cache; a trained run ends before its folder is committed, so
    not even a reference to it could be checked then). Its contents (none) are the same for every run that logs
    or uses it, so wandb keeps one version of it; only the metadata differs."""
    import wandb
    stage, key = folder.parent.name, folder.name
    return wandb.Artifact(f"{stage}-{key}", type=stage,
                          metadata={"cache_key": key, "path": str(Path(folder).resolve()), "inputs": list(inputs)})


def build_config(build: Build) -> dict:
    """A trained run's own config: its stage, cache key and inputs, and the settings that key the artifact."""
    return {"stage": build.artifact.stage, "cache_key": build.artifact.key, "inputs": list(build.artifact.inputs),
            **build.config}


def build_tags(build: Build) -> list[str]:
    """The tags of a trained run besides the experiment's: its stage, and its mode and seed where it has them."""
    config = build.config
    return [build.artifact.stage, *([str(config["mode"])] if "mode" in config else []),
            *([f"seed {config['seed']}"] if "seed" in config else [])]


class Tracker:
    """Opens wandb runs in `group`; `config` (the resolved config) goes into every run's config, and `prefix`
    into every run's name (a multirun's job number)."""

    def __init__(self, logger_cfg: LoggerConfig, group: str, run_dir: Path, config: Mapping[str, Any],
                 prefix: str = "") -> None:
        env = os.environ
        mode = logger_cfg.mode or WANDB_MODES.get(env.get("WANDB_MODE", ""), env.get("WANDB_MODE")) or "offline"
        if mode not in ("offline", "online", "disabled"):
            raise ConfigError("logger.mode", f"WANDB_MODE is {mode!r}; choose offline, online or disabled")
        self.cfg = dataclasses.replace(logger_cfg, mode=mode,
                                       project=logger_cfg.project or env.get("WANDB_PROJECT") or "unclip-harness")
        self.group = group
        self.prefix = prefix
        self.root = Path(logger_cfg.dir or env.get("WANDB_DIR") or run_dir)
        self.config = dict(config)
        self.experiment = str(self.config.get("experiment_name", ""))

    @classmethod
    def disabled(cls) -> "Tracker":
        """A tracker that logs nothing and never imports wandb."""
        return cls(LoggerConfig(mode="disabled"), "", Path("."), {})

    @property
    def enabled(self) -> bool:
        return self.cfg.mode != "disabled"

    def _settings(self, wandb: Any) -> Any:
        # tqdm bars and Hydra's log already cover the console; capturing it would duplicate them in the run.
        if self.cfg.mode == "online":
            return wandb.Settings(mode="online", console="off")
        # Offline runs skip system metrics, machine metadata and git: these are the parts that probe beyond
        # the process (GPU tools, cloud metadata endpoints, git subprocesses) and they slow down every init.
        return wandb.Settings(mode="offline", console="off", silent=True, x_disable_stats=True, x_disable_meta=True,
                              x_disable_machine_info=True, disable_git=True, save_code=False)

    @contextlib.contextmanager
    def run(self, name: str, job_type: str, tags: Sequence[str] = ()) -> Iterator[TrackerRun]:
        """A run named `name` in the tracker's group, tagged with the experiment and `tags`; finished (as failed)
        even when the block raises. Opened inside a cache build, it is that artifact's run (module docstring)."""
        if not self.enabled:
            yield TrackerRun(None)
            return
        global _open_runs
        import wandb

        self.root.mkdir(parents=True, exist_ok=True)
        settings = self._settings(wandb)
        _open_runs += 1
        try:
            if self.cfg.mode == "offline":
                # The run's settings are not enough: wandb's process context, loaded from the environment,
                # would still run git, probe the server for its analytics endpoint and let wandb-core report
                # its own errors over the network, unless the environment says no and the context is offline
                # before it starts.
                for var, value in _OFFLINE_ENV.items():
                    os.environ.setdefault(var, value)
                wandb.setup(settings=settings)
            build = current_build()
            config = self.config if build is None else build_config(build)
            tags = [self.experiment, *(build_tags(build) if build else ()), *tags]
            # `create_new` lets a stage open a run while another is still open instead of finishing that one.
            run = wandb.init(project=self.cfg.project, group=self.group, name=self.prefix + name, job_type=job_type,
                             dir=str(self.root.resolve()), config=config, settings=settings,
                             tags=[t[:64] for t in dict.fromkeys(tags) if t], reinit="create_new")
            try:
                tracked = TrackerRun(run, online=self.cfg.mode == "online")
                yield tracked
                if build is not None:
                    tracked.log_built(build.artifact)
            except BaseException:
                run.finish(exit_code=1)
                raise
            run.finish()
        finally:
            _open_runs -= 1
            if _open_runs == 0:
                wandb.teardown()


def default_group(cfg: Config, folder: Path) -> str:
    """One wandb group per invocation: `<experiment>-<run folder>` (the sweep folder for a multirun)."""
    return f"{cfg.experiment_name}-{Path(folder).name}"


def activate(tracker: Tracker) -> None:
    """Make `tracker` the one `active()` returns in this process (the pipeline's, and each worker's)."""
    global _active
    _active = tracker


def active() -> Tracker:
    """The process's active tracker; a disabled one when none was activated (a stage called on its own)."""
    return _active if _active is not None else Tracker.disabled()
