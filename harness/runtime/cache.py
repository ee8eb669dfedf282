"""The artifact cache (docs/design.md, section 1): every stage's output, keyed by what produced it.

An artifact is a folder `<root>/<stage>/<key>` where the key hashes the stage's name and code version, the part
of the config the stage reads, and the keys of its input artifacts. So a multirun over decoder modes finds the
CLIP, evaluator and prior already built and reuses them, while changing `clip.embed_dim` rebuilds CLIP and
everything downstream of it.

Builds are atomic and exclusive:
- a file lock per key (fcntl-based, released by the OS even when a process is SIGKILLed) makes a second
  process that wants the same artifact wait for the first instead of building it twice;
- the builder writes into `<key>.partial/`, which survives a crash so long builds can resume from the
  checkpoints they left there, and is renamed to `<key>` only when complete.

Under torchrun (`harness.runtime.distributed`) rank 0 alone takes the lock, decides whether to build, writes the meta
and renames the folder; the other ranks follow its decision. A stage that trains with DDP passes
`every_rank=True`: every rank runs the builder in the same `<key>.partial/` (rank 0 alone writes files there)
and resumes from the same checkpoint. Any other stage is built by rank 0 while the others wait. Either way
every rank returns only once the artifact is complete on disk, so all of them can load it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from filelock import FileLock

from harness.runtime import distributed

log = logging.getLogger(__name__)

META_FILE = "artifact.json"


@dataclass(frozen=True)
class Artifact:
    stage: str
    key: str
    path: Path
    meta: dict = field(default_factory=dict, compare=False)
    reused: bool = field(default=False, compare=False)
    inputs: tuple[str, ...] = field(default=(), compare=False)  # the names of the artifacts it was built from

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def name(self) -> str:
        """`<stage>-<key>`: what the artifact is called outside the cache (its wandb artifact)."""
        return f"{self.stage}-{self.key}"


@dataclass(frozen=True)
class Build:
    """The artifact a builder is making, readable from inside the builder (`current_build`): a wandb run opened
    there logs it as the run's output, with its inputs and the config that keys it (`harness.runtime.tracking`)."""
    artifact: Artifact  # as it will be once committed
    config: Mapping[str, Any]


_building: ContextVar[Build | None] = ContextVar("building", default=None)


def current_build() -> Build | None:
    """The build in progress in this process, if a builder is running."""
    return _building.get()


def _canonical(value: Any) -> Any:
    """JSON-able form with a stable order, so equal configs hash equally."""
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def artifact_key(stage: str, version: str, config: Mapping[str, Any], inputs: Sequence[Artifact]) -> str:
    payload = {"stage": stage, "version": version, "config": _canonical(config),
               "inputs": sorted(f"{a.stage}:{a.key}" for a in inputs)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _workdir(final: Path) -> Path:
    """Where an artifact is built before the rename that publishes it."""
    return Path(str(final) + ".partial")


class ArtifactCache:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def build(self, stage: str, version: str, config: Mapping[str, Any], inputs: Sequence[Artifact],
              builder: Callable[[Path], dict | None], *, every_rank: bool = False) -> Artifact:
        """Return the artifact for (stage, config, inputs), calling `builder(workdir)` only if it is missing.

        `builder` writes its files into `workdir` and returns a JSON-able dict of figures (stored as the
        artifact's `meta`, e.g. quality numbers and wall time). A workdir left by an interrupted build is
        handed back as it was, so the builder may resume from what it finds there. `every_rank`: under
        torchrun, run the builder on every rank (it trains with DDP) instead of on rank 0 alone.
        """
        key = artifact_key(stage, version, config, inputs)
        final = self.root / stage / key
        if distributed.world_size() > 1:
            return self._build_on_ranks(stage, version, key, final, config, inputs, builder, every_rank)
        final.parent.mkdir(parents=True, exist_ok=True)
        if (final / META_FILE).exists():
            return self._load(stage, key, final)
        with FileLock(str(final) + ".lock"):
            if (final / META_FILE).exists():  # built by another process while we waited
                return self._load(stage, key, final)
            meta = self._run_builder(builder, self._open_workdir(stage, key, final), final, config, inputs)
            self._commit(stage, version, key, config, inputs, final, meta)
        return Artifact(stage, key, final, meta, reused=False, inputs=_names(inputs))

    def has(self, stage: str, version: str, config: Mapping[str, Any], inputs: Sequence[Artifact]) -> bool:
        """Whether `build` with these arguments would find the artifact built."""
        return (self.root / stage / artifact_key(stage, version, config, inputs) / META_FILE).exists()

    def _build_on_ranks(self, stage: str, version: str, key: str, final: Path, config: Mapping[str, Any],
                        inputs: Sequence[Artifact], builder: Callable[[Path], dict | None],
                        every_rank: bool) -> Artifact:
        """`build` under torchrun: rank 0 decides and commits, so every rank takes the same branch."""
        lock = FileLock(str(final) + ".lock")
        main = distributed.is_main()
        built = False
        if main:
            final.parent.mkdir(parents=True, exist_ok=True)
            built = (final / META_FILE).exists()
            if not built:
                lock.acquire()  # held until the commit: another job wanting this artifact waits for it
                built = (final / META_FILE).exists()
        try:
            built = distributed.share(built)
            if not built:
                workdir = self._open_workdir(stage, key, final) if main else _workdir(final)
                distributed.barrier()  # the workdir exists before any rank's builder looks into it
                if main or every_rank:
                    meta = self._run_builder(builder, workdir, final, config, inputs)
                if main:
                    self._commit(stage, version, key, config, inputs, final, meta)
            distributed.barrier()  # the artifact is complete on disk for every rank
        finally:
            if lock.is_locked:
                lock.release()
        if built:
            return self._load(stage, key, final)
        record = json.loads((final / META_FILE).read_text())
        return Artifact(stage, key, final, record.get("meta", {}), reused=False, inputs=_names(inputs))

    def _open_workdir(self, stage: str, key: str, final: Path) -> Path:
        """Create the build folder `<key>.partial`, or reopen the one an interrupted build left to resume."""
        workdir = _workdir(final)
        resumed = workdir.exists()
        workdir.mkdir(exist_ok=True)
        log.info("%s: building artifact %s%s", stage, key, " (resuming)" if resumed else "")
        return workdir

    @staticmethod
    def _run_builder(builder: Callable[[Path], dict | None], workdir: Path, final: Path, config: Mapping[str, Any],
                     inputs: Sequence[Artifact]) -> dict:
        started = time.time()
        building = _building.set(Build(Artifact(final.parent.name, final.name, final, inputs=_names(inputs)),
                                       _canonical(config)))
        try:
            meta = dict(builder(workdir) or {})
        finally:
            _building.reset(building)
        meta.setdefault("wall_time_s", round(time.time() - started, 2))
        return meta

    def _commit(self, stage: str, version: str, key: str, config: Mapping[str, Any], inputs: Sequence[Artifact],
                final: Path, meta: dict) -> None:
        """Write the meta into the workdir, then rename the workdir to the artifact's folder (atomic)."""
        workdir = _workdir(final)
        # world_size: how many processes built it, for the record; the key is the same for any number.
        record = {"stage": stage, "version": version, "key": key, "config": _canonical(config),
                  "inputs": list(_names(inputs)), "meta": meta,
                  "world_size": distributed.world_size()}
        tmp = workdir / (META_FILE + ".tmp")
        tmp.write_text(json.dumps(record, indent=2))
        os.replace(tmp, workdir / META_FILE)
        if final.exists():  # a stale, incomplete folder from an older layout
            shutil.rmtree(final)
        os.replace(workdir, final)

    def _load(self, stage: str, key: str, path: Path) -> Artifact:
        record = json.loads((path / META_FILE).read_text())
        log.info("%s: reusing cached artifact %s", stage, key)
        inputs = record.get("inputs", [])  # a {stage: key} mapping in records written before the names
        names = [f"{s}-{k}" for s, k in inputs.items()] if isinstance(inputs, dict) else inputs
        return Artifact(stage, key, path, record.get("meta", {}), reused=True, inputs=tuple(names))


def _names(inputs: Sequence[Artifact]) -> tuple[str, ...]:
    return tuple(sorted(a.name for a in inputs))


class KeyWalk(ArtifactCache):
    """A cache that builds nothing: `build` hands back each artifact at the key it has (or would have) and
    records it in `named`. Running a config's stages on it lists every artifact the config names, without
    building any (`harness.runtime.cache_tool`)."""

    def __init__(self, root: str | Path) -> None:
        super().__init__(root)
        self.named: dict[str, Artifact] = {}

    def build(self, stage: str, version: str, config: Mapping[str, Any], inputs: Sequence[Artifact],
              builder: Callable[[Path], dict | None], *, every_rank: bool = False) -> Artifact:
        key = artifact_key(stage, version, config, inputs)
        final = self.root / stage / key
        built = (final / META_FILE).exists()
        meta = json.loads((final / META_FILE).read_text()).get("meta", {}) if built else {}
        artifact = Artifact(stage, key, final, meta, reused=built, inputs=_names(inputs))
        self.named[artifact.name] = artifact
        return artifact


def stored(root: str | Path) -> list[tuple[Path, str, str]]:
    """Every artifact folder of the cache at `root`, finished (it holds its record) or partial (`<key>.partial`):
    (folder, stage, key). Anything else under `root` is not the cache's and is never listed."""
    found = []
    for folder in sorted(p for p in Path(root).glob("*/*") if p.is_dir()):
        key = folder.name.removesuffix(".partial")
        if re.fullmatch(r"[0-9a-f]{16}", key) and (folder.name.endswith(".partial") or (folder / META_FILE).exists()):
            found.append((folder, folder.parent.name, key))
    return found
