"""`python -m harness [overrides]`: validate the whole config, then run the experiment's pipeline.

Hydra reports a bad override as a paragraph with a search path and a hint about HYDRA_FULL_ERROR. Before
handing the command line to Hydra we compose every combination it asks for with the compose API and check
it against the schema, so a wrong key, type, value or group choice fails first, in one line naming the key.

Under torchrun (`torchrun --standalone --nproc_per_node=N -m harness ...`) rank 0 alone starts Hydra: it makes
the run folder, writes the log, and hands the validated config and the folder to the other ranks, which never
start Hydra. So every rank uses one run folder whatever `hydra.run.dir` says (the default holds the start
time, which would differ between processes), and only rank 0 writes into it. One torchrun runs one job:
`--multirun` is refused there (launch one torchrun per job).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import sys
from pathlib import Path
from typing import Callable, Iterator

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from harness.config import CONF_DIR, Config, register_configs, validate
from harness.errors import ConfigError, HarnessError
from harness.runtime.preflight import check_paths


MAX_PREFLIGHT_JOBS = 64
log = logging.getLogger("harness")


def compose(overrides: list[str] = ()) -> Config:  # type: ignore[assignment]
    """Compose and validate a config as `python -m harness <overrides>` would (for tests and tools)."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        try:
            cfg = hydra_compose(config_name="config", overrides=list(overrides))
        except Exception as exc:  # Hydra and OmegaConf raise a handful of types with multi-line messages
            raise _one_line_error(exc, GlobalHydra.instance().config_loader().get_group_options) from None
    return validate(cfg)


def _one_line_error(exc: Exception, group_options: Callable[[str], list[str]]) -> ConfigError:
    text = str(exc)
    missing = re.search(r"Could not (?:find|load) '([^']+)/([^/']+)'", text)
    if missing:  # the group may be nested (hydra/launcher) and its options may come from plugins
        group, choice = missing.groups()
        return ConfigError(group, f"no option {choice!r}; choose from {', '.join(sorted(group_options(group)))}")
    cause = exc.__cause__ or exc  # OmegaConf's error, with the key in `full_key`, sits under Hydra's
    key = getattr(cause, "full_key", None) or getattr(exc, "full_key", None)
    override = re.search(r"override '([^']+)'", text)
    if not key and override:
        key = override.group(1)
    named = re.search(r"full_key: (\S+)", text)  # a YAML's unknown key: Hydra wraps the error in its own text
    if not key and named:
        key = named.group(1)
    lines = [ln.strip() for ln in str(cause).splitlines() if ln.strip()]
    unknown = re.search(r"Key '([^']+)' not in '([^']+)'", text)
    if unknown and key:
        if re.fullmatch(r"conditioning\.[^.]+\.module", key):
            return ConfigError(key, "a mode is data now: its YAML gives vector_source, sampling_vector and "
                                    "text_sequence instead of a module (docs/adding-a-mode.md)")
        return ConfigError(key, f"no such key in {unknown.group(2)}")
    return ConfigError(key or "config", lines[0] if lines else text)


def expand_jobs(overrides: list[str]) -> Iterator[list[str]]:
    """The jobs a command line's overrides make, as a multirun would: one per combination of the swept values
    (`decoder.size=tiny,small`); one job when nothing is swept. A malformed override is one line naming it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as exc:
        raise HarnessError(f"command line: {str(exc).splitlines()[0]}") from None
    choices = []
    for override, text in zip(parsed, overrides):
        if override.is_sweep_override():
            prefix = text.split("=", 1)[0]
            choices.append([f"{prefix}={v}" for v in override.sweep_string_iterator()])
        else:
            choices.append([text])
    return (list(job) for job in itertools.product(*choices))


def _preflight(argv: list[str]) -> bool:
    """Compose each job of the command line (capped) and check the paths it names, so bad input fails before
    any work starts.

    Returns whether the command line runs the pipeline (not `--help`, `--info`, `--cfg` and the like).
    """
    from hydra._internal.utils import get_args_parser

    args, _ = get_args_parser().parse_known_args(argv)
    # `--cfg` shows a config, complete or not (`experiment=hf_quick --cfg job` before choosing a dataset): Hydra
    # still refuses unknown keys and bad types; what a run would need is checked when one runs.
    if args.help or args.hydra_help or args.info or args.shell_completion or args.cfg:
        return False
    from harness.runtime.distributed import launched

    if args.multirun and launched():
        raise HarnessError("--multirun: torchrun runs one job; launch one torchrun per job instead")
    jobs = expand_jobs(list(args.overrides))  # hydra.* and hydra/* too: a launcher's keys are typed by its plugin
    # Under torchrun every rank composes, but only rank 0 (RANK is set before the process group exists) touches
    # the files: it alone writes, and it ends the launch with its one-line error.
    touches_files = int(os.environ.get("RANK", "0")) == 0
    checked = set()  # the jobs of a multirun mostly name the same files: read each once
    for job in itertools.islice(jobs, MAX_PREFLIGHT_JOBS):
        config = compose(job)
        paths = (config.cache_dir, config.clip.kind, config.clip.architecture, config.clip.weights)
        if touches_files and paths not in checked:
            check_paths(config)
            checked.add(paths)
    return True


@contextlib.contextmanager
def _one_line_errors() -> Iterator[None]:
    """A HarnessError ends the process with `error: <message>` on stderr and exit status 2."""
    try:
        yield
    except HarnessError as exc:
        # Once on the console, and in the run's log file: Hydra's console handler would print it a second time.
        record = log.makeRecord(log.name, logging.ERROR, __file__, 0, "error: %s", (exc,), None)
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.FileHandler):
                handler.handle(record)
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


def task(cfg: DictConfig) -> None:
    """One job of a run or a multirun. Left undecorated at module level so that launchers running jobs in other
    processes (joblib's loky workers, submitit) pickle it by reference and import it there."""
    from harness.runtime import distributed, pipeline
    from harness.runtime.device import check_device_available

    hydra_cfg = HydraConfig.get()
    with _one_line_errors():
        try:
            config = validate(cfg)
            # Relative to where the command ran, so every job shares one cache even with chdir.
            config.cache_dir = str(Path(hydra_cfg.runtime.cwd, config.cache_dir))
            check_device_available(config.device)
        except HarnessError:
            _remove_unstarted(Path(hydra_cfg.runtime.output_dir), f"{hydra_cfg.job.name}.log")
            raise
        if hydra_cfg.mode == RunMode.MULTIRUN:  # one wandb group for all its jobs; runs named after their job
            from harness.runtime.tracking import default_group

            config.logger.group = config.logger.group or default_group(config, Path(hydra_cfg.sweep.dir))
            config.logger.run_prefix = config.logger.run_prefix or f"job{hydra_cfg.job.num} "
        # Under torchrun the other ranks wait in `share` for this config and run folder (module docstring).
        pipeline.run(*distributed.share((config, Path(hydra_cfg.runtime.output_dir))))


def _remove_unstarted(folder: Path, log_name: str) -> None:
    """A job that fails before its first stage leaves no run folder: Hydra made it, with its config and log,
    before the job could check what only the machine running it can (its device)."""
    import shutil

    if folder.is_dir() and {p.name for p in folder.iterdir()} <= {".hydra", log_name}:
        shutil.rmtree(folder)


def _worker() -> None:
    """A torchrun rank other than 0: no Hydra, so no run folder or log of its own; errors only, on stderr."""
    from harness.runtime import distributed, pipeline

    logging.basicConfig(level=logging.ERROR, format=f"[rank {distributed.rank()}] %(name)s: %(message)s")
    logging.captureWarnings(True)  # library warnings are rank 0's to show, once
    with _one_line_errors():
        pipeline.run(*distributed.share(None))


_hydra_main = hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")(task)


# `unclip-harness <command> ...`: the tools beside the pipeline, each its own module with a `main(argv)`.
COMMANDS = {"compare": "harness.report.compare", "runs": "harness.report.runs", "rerender": "harness.report.rerender",
            "join": "harness.report.join", "pilot": "harness.report.pilot", "sheet": "harness.sheet",
            "cache": "harness.runtime.cache_tool", "recipe": "harness.report.recipe"}


def main() -> None:
    """The console script `unclip-harness` and `python -m harness`."""
    if sys.argv[1:2] and sys.argv[1] in COMMANDS:
        import importlib

        sys.exit(importlib.import_module(COMMANDS[sys.argv[1]]).main(sys.argv[2:]) or 0)
    if sys.argv[1:] == ["--version"]:
        from harness import __version__
        print(f"unclip-harness {__version__}")
        return
    register_configs()
    try:
        runs = _preflight(sys.argv[1:])
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    if not runs:
        _hydra_main()
        return
    from harness.runtime import distributed

    distributed.init()  # a no-op unless torchrun started several processes
    try:
        if distributed.is_main():
            _hydra_main()
        else:
            _worker()
    finally:
        distributed.destroy()
