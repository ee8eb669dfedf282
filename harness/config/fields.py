"""The schema's building blocks: a field with its constraint and the stages whose artifacts it keys, the check of
every field against its constraint, and the key of a stage's artifact read from those marks.

What changes an artifact is declared once, beside the field (`param(..., keys=...)`), and every stage's cache
key is read from here (`key_fields`); the constraints are checked by `problems` before any stage runs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import field
from pathlib import Path
from typing import Any, Callable, Iterator


def _conf_dir() -> Path:
    """The config groups: inside the package when installed from a wheel (the build maps the repository's
    top-level conf/ to harness/conf), at the top of the repository in a source checkout or editable install."""
    package = Path(__file__).resolve().parents[1]  # harness/
    return package / "conf" if (package / "conf").is_dir() else package.parent / "conf"


CONF_DIR = _conf_dir()
PILOTS_DIR = CONF_DIR / "pilots"  # the pilot studies shipped with the package (harness/report/pilot.py)


def param(default: Any, *, choices: tuple | None = None, ge: float | None = None, gt: float | None = None,
          le: float | None = None, min_len: int | None = None, keys: tuple[str, ...] | None = None,
          help: str = "") -> Any:
    """A dataclass field with a constraint; on a list the constraint applies to every element, and `min_len`
    to the list's length. `keys`: the stages whose artifact keys the field enters (`key_fields`); None
    takes the section's."""
    meta = {"choices": choices, "ge": ge, "gt": gt, "le": le, "min_len": min_len, "keys": keys, "help": help}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def section(factory: Callable[[], Any], *, keys: tuple[str, ...] = ()) -> Any:
    """A nested config whose fields enter the artifact keys of the stages `keys`, unless a field says otherwise."""
    return field(default_factory=factory, metadata={"keys": keys})


def key_fields(node: Any, stage: str, section_keys: tuple[str, ...] | None = None) -> dict:
    """The part of the config `node` that keys `stage`'s artifacts: every field the schema marks for it, nested
    as in the config. A field inside a marked section keys that section's stages, or those of its own mark
    that the section has (a training seed inside `clip.train` keys the CLIP, not the prior); outside any
    section, only its own mark. What changes an artifact is declared once, beside the field, and every
    stage's cache key is read from here (plus what the stage derives: a task's seed, a precision)."""
    out: dict = {}
    for f in dataclasses.fields(node):
        marked = f.metadata.get("keys")
        if marked is None:
            stages = section_keys or ()
        else:
            stages = tuple(marked) if section_keys is None else tuple(k for k in marked if k in section_keys)
        value = getattr(node, f.name)
        if dataclasses.is_dataclass(value):
            # An unmarked nested config is part of its section; a field outside any section opens none.
            if nested := key_fields(value, stage, stages if (marked is not None or section_keys is not None)
                                    else None):
                out[f.name] = nested
        elif stage in stages:
            out[f.name] = value
    return out


def _field_problems(value: Any, meta: dict) -> Iterator[str]:
    if isinstance(value, list) and meta.get("min_len") and len(value) < meta["min_len"]:
        yield f"needs at least {meta['min_len']} value{'s' if meta['min_len'] > 1 else ''}, got {value!r}"
    items = value if isinstance(value, list) else [value]
    for item in items:
        if item is None:
            continue
        if meta.get("choices") is not None and item not in meta["choices"]:
            yield f"must be one of {', '.join(map(str, meta['choices']))}, got {item!r}"
        if meta.get("ge") is not None and item < meta["ge"]:
            yield f"must be >= {meta['ge']}, got {item!r}"
        if meta.get("gt") is not None and item <= meta["gt"]:
            yield f"must be > {meta['gt']}, got {item!r}"
        if meta.get("le") is not None and item > meta["le"]:
            yield f"must be <= {meta['le']}, got {item!r}"


def problems(obj: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(key, message) for every field of a checked config that breaks its constraint or a cross-check."""
    if dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            key = f"{prefix}{f.name}"
            for message in _field_problems(value, dict(f.metadata)):
                yield key, message
            yield from problems(value, key + ".")
        if hasattr(obj, "cross_checks"):
            for sub, message in obj.cross_checks():
                yield f"{prefix}{sub}", message
    elif isinstance(obj, dict):
        for name, value in obj.items():
            yield from problems(value, f"{prefix}{name}.")
    elif isinstance(obj, list):
        for index, value in enumerate(obj):
            if dataclasses.is_dataclass(value):
                yield from problems(value, f"{prefix.rstrip('.')}[{index}].")
