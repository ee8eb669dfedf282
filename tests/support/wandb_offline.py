"""Read back what an offline wandb run logged, from its files alone (no server, no `wandb sync`), for tests.

wandb itself has no Python reader for its transaction log any more (its Go core reads it, to sync), so the
tests read it here.

wandb 0.31 writes an offline run as `<dir>/wandb/offline-run-<time>-<id>/` holding:
- `run-<id>.wandb`: the transaction log, every record the run sent (run, config, history, summary, exit),
  the only place the history and summary are kept offline (there is no `wandb-summary.json` then);
- `files/media/...`: what the history refers to: `table/<key>_<step>_<hash>.table.json` and
  `images/<key>_<step>_<hash>.png`.

The transaction log is a LevelDB-style log: a 7-byte file header (":W&B", magic 0xBEE1, version 0), then
32 KiB blocks of chunks, each with a 7-byte header (zlib's CRC-32 of type and data, little-endian length, type) and
a piece of one protobuf `Record`; a record too long for the rest of a block spans chunks FIRST, MIDDLE..., LAST.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any, Iterable, Iterator

import pandas as pd

_FILE_HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)
_BLOCK = 32 * 1024
_CHUNK = struct.Struct("<IHB")  # crc, length, type
_FULL, _FIRST, _LAST = 1, 2, 4  # chunk types; a MIDDLE (3) chunk is appended like a LAST one, without ending it


def offline_run_dirs(root: Path) -> list[Path]:
    """The offline run folders under `<root>/wandb/`, oldest first (their names start with the start time)."""
    return sorted(p.parent for p in Path(root).glob("wandb/offline-run-*/run-*.wandb"))


def _records(path: Path) -> Iterator[bytes]:
    """The serialised records of a transaction log; a record cut short at the end (a killed run) is dropped."""
    data = path.read_bytes()
    if not data.startswith(_FILE_HEADER):
        raise ValueError(f"{path}: not a wandb transaction log (version 0)")
    pos, pending = len(_FILE_HEADER), b""
    while pos + _CHUNK.size <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _CHUNK.size:  # the writer pads the tail of a block that cannot hold a chunk header
            pos += left
            continue
        crc, length, kind = _CHUNK.unpack_from(data, pos)
        chunk = data[pos + _CHUNK.size:pos + _CHUNK.size + length]
        if kind == 0 or len(chunk) < length:  # zero padding or a partial write: nothing more was committed
            return
        if zlib.crc32(chunk, zlib.crc32(bytes([kind]))) != crc:
            raise ValueError(f"{path}: corrupt chunk at byte {pos}")
        pos += _CHUNK.size + length
        pending = chunk if kind in (_FULL, _FIRST) else pending + chunk
        if kind in (_FULL, _LAST):
            yield pending


def _parent(target: dict, item: Any, create: bool) -> tuple[dict, str]:
    """The dict that holds an item's value, and its key (`key`, or `nested_key` for values logged as nested
    dicts); missing levels are made when `create`, else stand in as empty dicts."""
    *parents, leaf = list(item.nested_key) or [item.key]
    node = target
    for part in parents:
        node = node.setdefault(part, {}) if create else node.get(part, {})
    return node, leaf


def _apply(target: dict, items: Iterable[Any]) -> dict:
    """Set each item's JSON value at its key path."""
    for item in items:
        node, leaf = _parent(target, item, create=True)
        node[leaf] = json.loads(item.value_json)
    return target


def _remove(target: dict, items: Iterable[Any]) -> None:
    for item in items:
        node, leaf = _parent(target, item, create=False)
        node.pop(leaf, None)


def _media(values: Iterable[dict], kind: str) -> Iterator[tuple[str, str]]:
    """(key, path under files/) of every logged value of type `kind` (wandb's `_type`), in logging order."""
    for row in values:
        for key, value in row.items():
            if isinstance(value, dict) and value.get("_type") == kind:
                yield key, value["path"]


def read_offline_run(run_dir: Path) -> dict[str, Any]:
    """What an offline run logged: its identity, config, summary, history rows, tables and images.

    Returns `name`, `group`, `job_type`, `project`, `tags`, `config` and `summary` (wandb's own `_wandb` entries left
    out), `history` (one dict per step, in order, with wandb's `_step`, `_runtime` and `_timestamp`),
    `tables` ({key: DataFrame}, the last one logged under each key, line plots' points included as
    `<chart>_table`), `images` ({key: [paths, in logging order]}), `captions` ({key: [captions]}), `artifacts` ({name: {type,
    files, metadata}}; a reference's entry is its URI) and
    `exit_code` (None when the run never finished: killed, or still running).
    """
    from wandb.proto import wandb_internal_pb2 as pb

    run_dir = Path(run_dir)
    logs = list(run_dir.glob("run-*.wandb"))
    if len(logs) != 1:
        raise FileNotFoundError(f"{run_dir}: expected one run-*.wandb transaction log, found {len(logs)}")
    out: dict[str, Any] = {"name": "", "group": "", "job_type": "", "project": "", "tags": [], "config": {}, "summary": {},
                           "history": [], "artifacts": {}, "exit_code": None}
    for raw in _records(logs[0]):
        record = pb.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            out.update(name=run.display_name, group=run.run_group, job_type=run.job_type, project=run.project,
                       tags=list(run.tags))
            _apply(out["config"], run.config.update)
        elif kind == "config":
            _apply(out["config"], record.config.update)
            _remove(out["config"], record.config.remove)
        elif kind == "summary":
            _apply(out["summary"], record.summary.update)
            _remove(out["summary"], record.summary.remove)
        elif kind == "history":
            out["history"].append(_apply({}, record.history.item))
        elif kind == "artifact":
            entries = record.artifact.manifest.contents
            out["artifacts"][record.artifact.name] = {
                "type": record.artifact.type, "metadata": json.loads(record.artifact.metadata or "{}"),
                "files": sorted(entry.ref if entry.ref else entry.path for entry in entries)}
        elif kind == "exit":
            out["exit_code"] = record.exit.exit_code
    for section in ("config", "summary"):
        out[section].pop("_wandb", None)
    files = run_dir / "files"
    logged = [*out["history"], out["summary"]]
    tables = {}
    for key, path in _media(logged, "table-file"):
        table = json.loads((files / path).read_text())
        tables[key] = pd.DataFrame(table["data"], columns=table["columns"])
    out["tables"] = tables
    images: dict[str, list[Path]] = {}
    captions: dict[str, list[str]] = {}
    for row in out["history"]:
        for key, value in row.items():
            if isinstance(value, dict) and value.get("_type") == "image-file":
                images.setdefault(key, []).append(files / value["path"])
                captions.setdefault(key, []).append(value.get("caption", ""))
    out["images"], out["captions"] = images, captions
    return out
