"""`unclip-harness cache --list | --prune [overrides]`: what the artifact cache holds, and room made in it.

`--list` shows every artifact with its size, the date it was built and what it is (a decoder's mode and seed).
`--prune` keeps the artifacts that the configs of the overrides name (swept as a multirun would:
`experiment=quick,study 'train_seeds=[0],[1]'`; none: the default experiment) and removes every other one,
finished or left partial by an interrupted build. A config names an artifact when running it would build or
reuse that artifact: its stages are walked on a cache that builds nothing (`KeyWalk`), so the keys are the
pipeline's own. The keys hold the precision a device runs at, so a config left at `device=auto` is walked for
the CPU and for CUDA: a cache a GPU job filled survives a prune on a machine without one. A build in progress
(its lock held) is never removed, and a walk that fails other than at an artifact the cache lacks removes
nothing. `--dry-run` says what would go and removes nothing.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import torch

from harness.errors import HarnessError, print_or_exit
from harness.report.markdown import table
from harness.runtime.cache import META_FILE, KeyWalk, stored


def size_of(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def describe(folder: Path) -> str:
    """A finished artifact's mode and seed, from the config that keyed it; `partial` for an unfinished one."""
    if folder.name.endswith(".partial"):
        return "partial (a build in progress)" if in_progress(folder) else "partial (an interrupted build)"
    try:
        config = json.loads((folder / META_FILE).read_text()).get("config", {})
    except (OSError, json.JSONDecodeError):
        return "unreadable record"
    return ", ".join(f"{k} {config[k]}" for k in ("mode", "seed") if k in config)


def named_by(overrides: Sequence[str], root: Path | None) -> set[str]:
    """The artifacts (`<stage>-<key>`) that the configs of `overrides` name, up to their metrics."""
    from harness.cli import compose, expand_jobs
    from harness.runtime import pipeline
    from harness.runtime.context import Context

    named: set[str] = set()
    for job in expand_jobs(list(overrides)):
        device = compose(job).device
        for on in (["device=cpu", "device=cuda"] if device == "auto" else [f"device={device}"]):
            cfg = compose(job + [on, "workers=1", "logger.mode=disabled", "progress=false"])
            walk = KeyWalk(root or Path(cfg.cache_dir))
            try:
                pipeline.build(Context(cfg, walk, torch.device("cpu")), "metrics")
            except Exception as exc:
                # A stage that reads an artifact the config names but the cache lacks (the prompts come from the
                # data) ends the walk: all the config names after it is keyed by that artifact, so none of it can
                # be in the cache. Any other failure leaves the names unknown, and nothing is removed.
                unbuilt = [str(a.path) for a in walk.named.values() if not a.reused]
                if not any(path in f"{exc} {getattr(exc, 'filename', '')}" for path in unbuilt):
                    stage = next(reversed(walk.named), "the start")
                    raise HarnessError(f"--prune: the walk of {' '.join(job) or 'the default config'} ({on}) "
                                       f"stopped after {stage} ({type(exc).__name__}: {exc}); nothing was removed"
                                       ) from None
            named |= set(walk.named)
    return named


def in_progress(folder: Path) -> bool:
    """Whether a build holds the artifact's lock now (the cache takes it for the whole build)."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(folder).removesuffix(".partial") + ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    lock.release()
    return False


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="unclip-harness cache", description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--list", action="store_true", help="every artifact, its size, date and what it is")
    action.add_argument("--prune", action="store_true", help="remove every artifact the overrides' configs do not name")
    parser.add_argument("overrides", nargs="*", help="config overrides, comma-swept as in a multirun")
    parser.add_argument("--dir", type=Path, default=None, help="the cache folder (default: the configs' cache_dir)")
    parser.add_argument("--dry-run", action="store_true", help="with --prune: say what would go, remove nothing")
    args = parser.parse_args(argv)
    print_or_exit(lambda: run(args))


def run(args: argparse.Namespace) -> str:
    """The listing (and what was pruned), as text."""
    logging.disable(logging.INFO)  # the walk's stage lines; what matters here is the table
    if args.dir is None:  # the first job's cache folder, relative to here as a run's would be
        from harness.cli import compose, expand_jobs

        args.dir = Path(compose(next(expand_jobs(list(args.overrides)))).cache_dir)
    if not args.dir.is_dir():
        raise HarnessError(f"--dir: no cache folder {args.dir}")
    found = stored(args.dir)
    keep = named_by(args.overrides, args.dir) if args.prune else None
    rows, removed, total, freed = [], [], 0, 0
    for folder, stage, key in found:
        size = size_of(folder)
        total += size
        gone = keep is not None and f"{stage}-{key}" not in keep and not in_progress(folder)
        if gone:
            removed.append(folder)
            freed += size
        built = datetime.datetime.fromtimestamp(folder.stat().st_mtime).strftime("%Y-%m-%d %H:%M")
        rows.append([stage, folder.name, f"{size / 2**20:.1f}", built, describe(folder),
                     *(["remove" if gone else "keep"] if keep is not None else [])])
    headers = ["stage", "key", "MB", "built", "what", *(["prune"] if keep is not None else [])]
    lines = [*table(headers, rows), f"{len(found)} artifacts, {total / 2**20:.1f} MB in {args.dir}"]
    if keep is None:
        return "\n".join(lines)
    if args.dry_run:
        return "\n".join([*lines, f"--dry-run: would remove {len(removed)} artifacts, {freed / 2**20:.1f} MB"])
    for folder in removed:
        shutil.rmtree(folder)
        Path(str(folder).removesuffix(".partial") + ".lock").unlink(missing_ok=True)
    return "\n".join([*lines, f"removed {len(removed)} artifacts, {freed / 2**20:.1f} MB"])
