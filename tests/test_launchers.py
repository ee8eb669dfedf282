"""Sweeps through Hydra's launchers: the jobs run in other processes, share one artifact cache, and build what
they have in common once."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from harness.cli import compose
from harness.errors import ConfigError
from test_pipeline import offline_env

# Stages both jobs need: the jobs differ only in the sweep's seed, so everything upstream of the sweep is shared.
SHARED_STAGES = {"data", "clip", "embeddings", "probe", "eval_clip", "prior", "decoder"}
CACHE_EVENT = re.compile(r"^\[([^\]]+)\]\[harness\.runtime\.cache\]\[INFO\] - (\w+): (building|reusing cached) artifact (\w+)")
TIME = re.compile(r"^\[([^\]]+)\]")


def multirun(workdir: Path, *overrides: str) -> list[Path]:
    """A two-job smoke multirun launched from `workdir` (one mode, wandb off); returns the job folders."""
    command = [sys.executable, "-m", "harness", "-m", "experiment=smoke", "conditioning=[clip_text]",
               "logger.mode=disabled", "sweep.seed=0,1", f"hydra.sweep.dir={workdir / 'sweep'}", *overrides]
    result = subprocess.run(command, cwd=workdir, env=offline_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    jobs = sorted(path.parent for path in (workdir / "sweep").glob("*/report.md"))
    assert len(jobs) == 2, result.stderr[-4000:]
    return jobs


def cache_events(job: Path) -> dict[str, list[tuple[str, str]]]:
    """stage -> [(building | reusing cached, key)] from a job's log."""
    events: dict[str, list[tuple[str, str]]] = {}
    for line in (job / "cli.log").read_text().splitlines():
        match = CACHE_EVENT.match(line)
        if match:
            events.setdefault(match.group(2), []).append((match.group(3), match.group(4)))
    return events


def log_span(job: Path) -> tuple[str, str]:
    """The timestamps of a job's first and last log lines (they sort as text)."""
    times = [match.group(1) for match in map(TIME.match, (job / "cli.log").read_text().splitlines()) if match]
    return times[0], times[-1]


def assert_shared_stages_built_once(jobs: list[Path], cache: Path) -> None:
    first, second = (cache_events(job) for job in jobs)
    for stage in SHARED_STAGES:
        pair = sorted(first[stage] + second[stage])
        assert [verb for verb, _ in pair] == ["building", "reusing cached"], (stage, pair)
        assert pair[0][1] == pair[1][1], (stage, pair)  # the same artifact
    assert first["sweep"][0][0] == second["sweep"][0][0] == "building"  # what differs is built by each job
    assert len([path for path in (cache / "clip").iterdir() if path.is_dir()]) == 1
    assert not list(cache.glob("*/*.partial"))
    # The jobs overlapped in time: the lock, not their order, kept the second from building what the first did.
    spans = [log_span(job) for job in jobs]
    assert spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1], spans
    for job in jobs:
        assert OmegaConf.load(job / "config.yaml").cache_dir == str(cache)


@pytest.mark.slow
def test_parallel_jobs_build_the_shared_clip_once(tmp_path):
    """joblib's loky workers (`hydra/launcher=parallel`), with an absolute cache dir."""
    cache = tmp_path / "cache"
    jobs = multirun(tmp_path, "hydra/launcher=parallel", f"cache_dir={cache}")
    assert_shared_stages_built_once(jobs, cache)
    # One wandb group for the whole invocation (the sweep folder's name); each job's runs carry its number.
    loggers = [OmegaConf.load(job / "config.yaml").logger for job in jobs]
    assert [(lg.group, lg.run_prefix) for lg in loggers] == [("smoke-sweep", "job0 "), ("smoke-sweep", "job1 ")]


@pytest.mark.slow
def test_submitit_jobs_share_a_relative_cache_dir_across_chdir(tmp_path):
    """submitit's local executor (`hydra/launcher=slurm_local`): the SLURM launcher's path, a fresh interpreter
    per job. Each job runs in its own folder (hydra.job.chdir) and still finds the one cache under the launch dir."""
    jobs = multirun(tmp_path, "hydra/launcher=slurm_local", "cache_dir=shared_cache", "hydra.job.chdir=true")
    assert_shared_stages_built_once(jobs, tmp_path / "shared_cache")


@pytest.mark.parametrize("launcher, target, setting", [("parallel", "JoblibLauncher", ("n_jobs", 2)),
                                                       ("slurm_local", "LocalLauncher", ("gpus_per_node", 1)),
                                                       ("slurm", "SlurmLauncher", ("nodes", 1))])
def test_launcher_presets_compose_to_their_plugin_with_our_settings(launcher, target, setting):
    from hydra import compose as hydra_compose, initialize_config_dir

    from harness.config import CONF_DIR

    compose(["experiment=smoke", f"hydra/launcher={launcher}"])  # the job's config validates beside it
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose("config", overrides=["experiment=smoke", f"hydra/launcher={launcher}"],
                            return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith(target)
    assert cfg.hydra.launcher[setting[0]] == setting[1]


@pytest.mark.parametrize("overrides, key", [
    (["hydra/launcher=paralel"], "hydra/launcher"),
    (["hydra/launcher=parallel", "hydra.launcher.n_jobz=2"], "hydra.launcher.n_jobz"),
    (["hydra/launcher=slurm", "hydra.launcher.gpus_per_task=two"], "hydra.launcher.gpus_per_task"),
])
def test_bad_launcher_override_names_the_key(overrides, key):
    """The launcher YAMLs extend the plugins' schemas, so their keys are checked like ours."""
    with pytest.raises(ConfigError) as info:
        compose(["experiment=smoke", *overrides])
    assert info.value.key == key
    assert "\n" not in str(info.value)
