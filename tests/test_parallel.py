"""Stages run side by side in worker processes (workers > 1) build exactly what one process builds."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from harness.runtime import pipeline
from harness.runtime.cache import ArtifactCache
from harness.cli import compose
from harness.decoder import stage as decoder_stage
from harness.errors import HarnessError
from harness.runtime.parallel import run_tasks, start_order
from support.stages import train_decoder, upstream_of_decoders


def _fail(message: str) -> None:
    raise HarnessError(message)


def _square(x: int) -> int:
    return x * x


def test_results_come_back_in_task_order_and_errors_reach_the_caller():
    results, seconds = run_tasks({"b": (_square, (3,)), "a": (_square, (4,))}, workers=2)
    assert list(results.items()) == [("b", 9), ("a", 16)] and set(seconds) == {"a", "b"}
    with pytest.raises(HarnessError, match="decoder\\[x\\]: diverged"):
        run_tasks({"ok": (_square, (2,)), "bad": (_fail, ("decoder[x]: diverged",))}, workers=2)


def _start(log: str, name: str, seconds: float) -> None:
    with open(log, "a") as f:
        f.write(name + "\n")
    time.sleep(seconds)


def test_the_costliest_tasks_start_first(tmp_path):
    costs = {"cheap": 1.0, "costly": 3.0, "middle": 2.0}
    assert start_order(list(costs), costs) == ["costly", "middle", "cheap"]
    log = str(tmp_path / "started")
    tasks = {name: (_start, (log, name, 0.1)) for name in costs}
    results, _ = run_tasks(tasks, workers=2, costs=costs)
    assert list(results) == ["cheap", "costly", "middle"]  # results keep the given order
    # Workers take tasks in the order they were queued, so the first given (the cheap one) never starts first;
    # which worker writes first, and a worker still starting up taking its first task late, are up to the OS.
    assert Path(log).read_text().split()[0] in ("costly", "middle")


def test_a_decoders_cost_counts_its_text_pathway_and_is_nothing_once_cached(smoke_config):
    # A key of its own (3 steps), so that no other test's decoder is cached under it.
    ctx = upstream_of_decoders(smoke_config("conditioning=[clip_text,glide]", "decoder.train.steps=3"))
    clip_text, glide = (decoder_stage.cost(ctx.for_task(mode=mode, seed=0)) for mode in ("clip_text", "glide"))
    assert glide > clip_text > 0  # glide trains a text transformer too
    train_decoder(ctx, "clip_text")
    assert decoder_stage.cost(ctx.for_task(mode="clip_text", seed=0)) == 0


def test_workers_exit_when_their_parent_is_killed(tmp_path):
    # Otherwise they go on building artifacts into the cache of a run that is gone.
    script = Path(__file__).parent / "support" / "sleepers.py"
    parent = subprocess.Popen([sys.executable, str(script), str(tmp_path)])
    try:
        deadline = time.monotonic() + 120
        while len(list(tmp_path.iterdir())) < 2:
            assert parent.poll() is None and time.monotonic() < deadline, "the workers never started"
            time.sleep(0.2)
    finally:
        parent.kill()
        parent.wait()
    workers = [int(p.name) for p in tmp_path.iterdir()]
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in workers)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # An exited child of the killed parent is reaped by init; until then it is a zombie, which counts as gone.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def test_decoders_trained_in_two_workers_match_those_trained_in_one_process(tmp_path):
    modes = ["clip_text", "glide"]
    cfg = compose(["experiment=smoke", f"cache_dir={tmp_path / 'parallel'}", f"conditioning=[{','.join(modes)}]",
                   "workers=2"])
    ctx = upstream_of_decoders(cfg)
    # The one-process reference trains in a copy of the cache holding the same upstream artifacts.
    shutil.copytree(tmp_path / "parallel", tmp_path / "sequential")
    reference = dataclasses.replace(ctx, cache=ArtifactCache(tmp_path / "sequential"))

    parallel = pipeline.build(ctx, through="decoder").decoders()  # the decoders' phase: two tasks, two workers
    for mode in modes:
        sequential = train_decoder(reference, mode)
        assert not sequential.reused and sequential.key == parallel[(mode, 0)].key  # workers is not in the key
        a, b = (torch.load(x.file(decoder_stage.WEIGHTS), weights_only=True) for x in (parallel[(mode, 0)], sequential))
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), mode
