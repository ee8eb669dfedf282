"""A thin wrapper over wandb: one run per trained artifact and one for the sweep and report, grouped by
invocation (every run of one `unclip-harness ...` command, all jobs of a multirun included, share a group).

`logger.mode` decides everything (empty: the environment's WANDB_MODE, else offline; likewise `logger.project`
and `logger.dir` yield to WANDB_PROJECT and WANDB_DIR when empty):
- `offline` (default): wandb writes its run folders under `<logger.dir or run_dir>/wandb/` and never touches
  the network; `wandb sync <folder>` uploads them later;
- `online`: the same, synced to the wandb server as it runs;
- `disabled`: wandb is never imported and nothing is written; every logging call is a no-op.

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

    def __init__(self, wandb_run: Any | None) -> None:
        self._run = wandb_run

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
        """One line chart per metric, `metric` against `x` with a line per value of `series`.

        For the sweep: `x="guidance", series="mode"`. Rows sharing (series, x), e.g. several training seeds,
        are averaged; missing values are left out. Each chart is logged under `<metric>_vs_<x>` and its points
        as the table `<metric>_vs_<x>_table`, which is also how offline runs keep them.
        """
        if self._run is None:
            return
        import wandb
        for metric in metrics:
            points = frame.groupby([series, x], sort=True)[metric].mean().dropna()
            names = list(points.index.get_level_values(0).unique())
            xs = [list(points.loc[name].index) for name in names]
            ys = [list(points.loc[name].values) for name in names]
            chart = wandb.plot.line_series(xs=xs, ys=ys, keys=[str(n) for n in names], title=f"{metric} vs {x}",
                                           xname=x)
            self._run.log({f"{metric}_vs_{x}": chart})

    def summary(self, values: Mapping[str, Any]) -> None:
        if self._run is not None:
            self._run.summary.update(dict(values))

    def log_files(self, name: str, kind: str, files: Sequence[Path]) -> None:
        """Files as one wandb artifact `name` of type `kind` (offline runs keep it until `wandb sync`)."""
        if self._run is not None:
            import wandb
            artifact = wandb.Artifact(name, type=kind)
            for path in files:
                artifact.add_file(str(path))
            self._run.log_artifact(artifact)


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
    def run(self, name: str, job_type: str) -> Iterator[TrackerRun]:
        """A run named `name` in the tracker's group; finished (as failed) even when the block raises."""
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
            # `create_new` lets a stage open a run while another is still open instead of finishing that one.
            run = wandb.init(project=self.cfg.project, group=self.group, name=self.prefix + name, job_type=job_type,
                             dir=str(self.root.resolve()), config=self.config, settings=settings,
                             reinit="create_new")
            try:
                yield TrackerRun(run)
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
