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


def test_cache_listing_holds_artifacts_only_and_prune_spares_a_build_in_progress(tmp_path):
    """`unclip-harness cache` lists the cache's own folders, never another folder under the same root, and a
    build whose lock another process holds is never a candidate for removal."""
    import subprocess
    import sys
    import textwrap

    from harness.runtime.cache import stored
    from harness.runtime.cache_tool import in_progress

    cache = ArtifactCache(tmp_path)
    done = cache.build("data", "1", {"n": 1}, [], lambda workdir: None)
    running = tmp_path / "decoder" / "0123456789abcdef.partial"
    running.mkdir(parents=True)
    (tmp_path / "notes" / "drafts").mkdir(parents=True)  # not the cache's: never listed, never pruned
    assert [(f.name, s) for f, s, _ in stored(tmp_path)] == [(done.key, "data"), ("0123456789abcdef.partial", "decoder")]
    assert not in_progress(running)
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from filelock import FileLock
        with FileLock({str(tmp_path / "decoder" / "0123456789abcdef.lock")!r}):
            print("held", flush=True)
            time.sleep(30)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert in_progress(running)
    finally:
        holder.kill()


def test_prune_keeps_a_device_auto_configs_artifacts_for_the_cpu_and_for_cuda(tmp_path):
    """The keys hold the precision the device runs at: a prune on a machine without a GPU must not remove what a
    GPU job of the same config built."""
    from harness.runtime.cache_tool import named_by

    on_cpu = named_by(["experiment=smoke", "device=cpu"], tmp_path)
    on_cuda = named_by(["experiment=smoke", "device=cuda"], tmp_path)
    assert on_cpu != on_cuda and named_by(["experiment=smoke"], tmp_path) == on_cpu | on_cuda
