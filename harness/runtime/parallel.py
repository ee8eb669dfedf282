"""Independent stages in separate processes, one core each.

On a small CPU the models here are too small for intra-op threads to pay: two threads on two cores trained
the tiny decoder barely faster than one, and any other process on the machine made them 10-100x slower
(README), while two processes on one core each run at the one-core speed side by side. So the pipeline runs
work that does not feed each other as tasks in `workers` processes: the CLIP (then its prior), the probe and the
evaluation CLIP; every decoder; the sweep's cells, one task per decoder; batches of the metrics' groups. Each
task builds its artifact through the cache exactly as in one process (the cache's lock makes concurrent
builds safe), so the artifacts and their keys do not depend on `workers`.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Callable, Hashable, Iterable

import torch

from harness.runtime import distributed, progress, tracking

log = logging.getLogger(__name__)

Task = tuple[Callable[..., Any], tuple]


def run_tasks(tasks: dict[Hashable, Task], workers: int, labels: Callable[[Hashable], str] = str,
              desc: str = "tasks", costs: dict[Hashable, float] | None = None
              ) -> tuple[dict[Hashable, Any], dict[Hashable, float]]:
    """Run `fn(*args)` for every task; returns (results, seconds each task took), both in the tasks' order.

    With `workers` > 1 (and not under torchrun, whose ranks already share the work) the tasks run in that many
    spawned processes with `threads // workers` torch threads each, started in `start_order(costs)`: the
    costliest first, so that the last task to finish is a short one. A failing task cancels the tasks not yet
    started, lets the running ones finish (their artifacts stay cached for the next run) and re-raises.
    While they run, every process reports progress as log lines (`harness.runtime.progress`): each task its own loop,
    the main process the tasks done out of `desc`'s total, with an ETA from the mean task time so far spread
    over the processes (logged after each task in one process too).
    """
    started = time.perf_counter()
    if workers <= 1 or len(tasks) <= 1 or distributed.launched():
        results, seconds = {}, {}
        for key, (fn, args) in tasks.items():
            results[key], seconds[key] = _timed(fn, *args)
            _log_done(labels(key), list(seconds.values()), len(tasks), 1, started, desc)
        return results, seconds

    processes, threads = min(workers, len(tasks)), max(1, torch.get_num_threads() // workers)
    log_files = [h.baseFilename for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start_worker, initargs=(threads, log_files, tracking.active()))
    order = start_order(list(tasks), costs)
    log.info("%d tasks in %d processes of %d thread(s) each: %s", len(tasks), processes, threads,
             ", ".join(labels(k) for k in order))
    futures = {pool.submit(_timed, tasks[key][0], *tasks[key][1]): key for key in order}
    took: list[float] = []
    try:
        with progress.as_log_lines():
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    if future.exception() is not None:
                        raise future.exception()
                    took.append(future.result()[1])
                    _log_done(labels(futures[future]), took, len(tasks), processes, started, desc)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    results = {futures[f]: f.result() for f in futures}
    return {k: results[k][0] for k in tasks}, {k: results[k][1] for k in tasks}


def start_order(keys: list[Hashable], costs: dict[Hashable, float] | None) -> list[Hashable]:
    """The keys by decreasing cost, ties in their given order; the given order without costs. A greedy pool
    needs the longest first: on two workers, the quick preset's decoders in the order of its modes (glide 633 s
    and clip_text 546 s, then unclip 575 s and combined 653 s) left one worker idle for the last 165 s."""
    return keys if costs is None else sorted(keys, key=lambda key: -costs[key])


def _log_done(label: str, took: list[float], total: int, processes: int, started: float, desc: str) -> None:
    """`done: <task> (<s>); <desc>: k/n, elapsed, ETA`, the ETA from the mean task time over the processes."""
    remaining = sum(took) / len(took) * (total - len(took)) / processes
    log.info("done: %s (%.0f s); %s", label, took[-1],
             progress.tasks_line(desc, len(took), total, time.perf_counter() - started, remaining))


def _timed(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    return fn(*args), round(time.perf_counter() - start, 2)


def _start_worker(threads: int, log_files: Iterable[str], tracker: tracking.Tracker) -> None:
    # A worker outlives a parent killed without a chance to shut the pool down (SIGKILL, SIGTERM) and would go
    # on writing into the cache; it follows its parent out instead, leaving any build resumable.
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    progress.log_lines()  # bars from several processes on one console would overwrite each other
    tracking.activate(tracker)  # a stage trained here logs its curves to the run's wandb group
    # A spawned process starts without the run's logging: send its records to the console and the run's log.
    handlers: list[logging.Handler] = [logging.StreamHandler(), *(logging.FileHandler(f) for f in log_files)]
    logging.basicConfig(level=logging.INFO, handlers=handlers,
                        format=f"[%(asctime)s][%(name)s][%(levelname)s][worker {os.getpid()}] - %(message)s")


def _exit_with_parent(parent: int, every_s: float = 0.5) -> None:
    while os.getppid() == parent:
        time.sleep(every_s)
    os._exit(1)
