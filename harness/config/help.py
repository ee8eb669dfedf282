"""What `unclip-harness --help` says about the keys: the schema's help strings, section by section.

Hydra's own help prints the composed config, several hundred lines of values; the values stay one flag away
(`--cfg job`), and the help shows what each documented key does and which values it accepts.
"""

from __future__ import annotations

import dataclasses
import textwrap
import typing
from typing import Iterator

RESOLVER = "harness_keys_help"  # the OmegaConf resolver conf/config.yaml's help template calls


def _nested(schema: type, f: dataclasses.Field) -> tuple[type, str] | None:
    """The dataclass a field holds and the key part it adds: itself, or `<name>` under a mapping of them."""
    hint = typing.get_type_hints(schema)[f.name]
    if dataclasses.is_dataclass(hint):
        return hint, ""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (dict, typing.Dict) and args and dataclasses.is_dataclass(args[-1]):
        return args[-1], "<name>."
    return None


def documented_keys(schema: type, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(key, what it does) for every field of `schema` with a help string or a set of choices, depth first."""
    for f in dataclasses.fields(schema):
        nested = _nested(schema, f)
        if nested is not None:
            yield from documented_keys(nested[0], f"{prefix}{f.name}.{nested[1]}")
            continue
        text, choices = f.metadata.get("help", ""), f.metadata.get("choices")
        if choices:
            shown = ", ".join(str(c) if c != "" else '""' for c in choices)  # "" : the environment decides
            text = f"{text}{'; ' if text else ''}one of {shown}"
        if text:
            yield prefix + f.name, text


def keys_help(schema: type | None = None, width: int = 110) -> str:
    """The documented keys, under a heading per top-level section."""
    from harness.config.schema import Config

    lines: list[str] = []
    section = None
    for key, text in documented_keys(schema or Config):
        top = key.split(".")[0] if "." in key else "(top level)"
        if top != section:
            lines += ["", f"{top}:"] if lines else [f"{top}:"]
            section = top
        lines += textwrap.wrap(f"{key}: {text}", width, initial_indent="  ", subsequent_indent="      ")
    return "\n".join(lines)


def register_resolver() -> None:
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver(RESOLVER):
        # Hydra fills its help template with string.Template: a `$` in a help string must come through as one.
        OmegaConf.register_new_resolver(RESOLVER, lambda: keys_help().replace("$", "$$"))
