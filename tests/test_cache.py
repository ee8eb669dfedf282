"""Artifacts are keyed by what produced them, written atomically, and built once under contention."""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path

from harness.runtime.cache import ArtifactCache


def slow_builder(counter_dir: str):
    def build(workdir: Path) -> dict:
        (Path(counter_dir) / f"built-{time.time_ns()}").touch()
        time.sleep(1.0)
        (workdir / "value.txt").write_text("42")
        return {"value": 42}
    return build


def build_once(root: str, counter_dir: str, queue) -> None:
    artifact = ArtifactCache(root).build("cheap", "1", {"x": 1}, [], slow_builder(counter_dir))
    queue.put((artifact.key, (artifact.path / "value.txt").read_text()))


def test_two_processes_build_once(tmp_path):
    counter = tmp_path / "counter"
    counter.mkdir()
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=build_once, args=(str(tmp_path / "cache"), str(counter), queue)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    results = [queue.get(timeout=5) for _ in procs]
    assert len(list(counter.iterdir())) == 1
    assert results[0] == results[1] and results[0][1] == "42"


def test_key_follows_config_and_inputs(tmp_path):
    cache = ArtifactCache(tmp_path)
    a = cache.build("s", "1", {"x": 1}, [], lambda w: {})
    again = cache.build("s", "1", {"x": 1}, [], lambda w: (_ for _ in ()).throw(AssertionError("rebuilt")))
    assert again.reused and again.key == a.key
    assert cache.build("s", "1", {"x": 2}, [], lambda w: {}).key != a.key
    assert cache.build("s", "2", {"x": 1}, [], lambda w: {}).key != a.key
    assert cache.build("t", "1", {"x": 1}, [a], lambda w: {}).key != cache.build("t", "1", {"x": 1}, [], lambda w: {}).key


def test_failed_build_leaves_no_artifact_and_resumes(tmp_path):
    cache = ArtifactCache(tmp_path)

    def crash(workdir: Path) -> dict:
        (workdir / "progress.txt").write_text("half")
        raise RuntimeError("killed")

    try:
        cache.build("s", "1", {}, [], crash)
    except RuntimeError:
        pass
    seen = {}

    def resume(workdir: Path) -> dict:
        seen["found"] = (workdir / "progress.txt").read_text()
        return {}

    artifact = cache.build("s", "1", {}, [], resume)
    assert seen["found"] == "half"
    assert (artifact.path / "artifact.json").exists() and not Path(str(artifact.path) + ".partial").exists()
