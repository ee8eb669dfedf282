"""Progress for every long loop: done/total, elapsed time, ETA and rate.

On an interactive terminal, with nothing else writing to it, a loop draws a tqdm bar. Anywhere else (a worker
process, the main process while workers run, output sent to a file or a pipe) the same figures go to the log
as one line every `LOG_EVERY_S` seconds, plus the final one, so the console of a run with two workers and its
log file show how far each task is and when it will end:

    decoder[glide seed 0]: 300/1000 (30%), 01:10 elapsed, ETA 02:44, 4.27it/s, loss=0.0712, img_s=273
"""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import Any, Iterable, Iterator

from tqdm import tqdm

log = logging.getLogger("harness.runtime.progress")

LOG_EVERY_S = 20.0
LOG_FORMAT = "{desc}: {n_fmt}/{total_fmt} ({percentage:.0f}%), {elapsed} elapsed, ETA {remaining}, {rate_fmt}{postfix}"
_as_log_lines = False


class _LogStream:
    """A file for tqdm that turns each redraw into one log record."""

    def write(self, text: str) -> None:
        line = text.strip("\r\n ")
        if line:
            log.info(line)

    def flush(self) -> None:
        pass


def tasks_line(desc: str, done: int, total: int, elapsed_s: float, remaining_s: float) -> str:
    """A stage's tasks in the format of the loops' lines: `decoders: 2/4 (50%), 05:02 elapsed, ETA 04:10`."""
    return (f"{desc}: {done}/{total} ({100 * done / total:.0f}%), {tqdm.format_interval(elapsed_s)} elapsed, "
            f"ETA {tqdm.format_interval(remaining_s)}")


def log_lines() -> None:
    """From now on this process reports progress as log lines (a worker process calls this when it starts)."""
    global _as_log_lines
    _as_log_lines = True


@contextlib.contextmanager
def as_log_lines() -> Iterator[None]:
    """Log lines while the block runs: the main process while its workers write to the same console."""
    global _as_log_lines
    before, _as_log_lines = _as_log_lines, True
    try:
        yield
    finally:
        _as_log_lines = before


def bar(iterable: Iterable | None = None, *, desc: str, total: int | None = None, initial: int = 0,
        enabled: bool = True, **kwargs: Any) -> tqdm:
    """A tqdm over `iterable` (or updated by hand) that reports as the module docstring says."""
    if not enabled:
        return tqdm(iterable, total=total, initial=initial, disable=True)
    if _as_log_lines or not sys.stderr.isatty():
        # miniters=1: the count is checked every step, and tqdm's monitor thread never forces a redraw (it
        # would log a stale count between two intervals).
        return tqdm(iterable, desc=desc, total=total, initial=initial, file=_LogStream(), bar_format=LOG_FORMAT,
                    mininterval=LOG_EVERY_S, miniters=1, leave=True, **kwargs)
    return tqdm(iterable, desc=desc, total=total, initial=initial, dynamic_ncols=True, leave=False, **kwargs)
