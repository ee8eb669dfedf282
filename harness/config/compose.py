"""From a composed Hydra config to checked dataclasses: the schema registered for Hydra, the repairs a composed
config needs (a preset's keys for modes the run did not choose), and `validate`, which raises one `ConfigError`
naming the first bad key.
"""

from __future__ import annotations

import dataclasses
import logging
import typing
from typing import Any, Iterator

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf, open_dict

from harness.config.fields import CONF_DIR, problems
from harness.config.schema import Config, ReportConfig
from harness.errors import ConfigError

log = logging.getLogger(__name__)


def register_configs() -> None:
    """Make the schemas available to Hydra (`conf/config.yaml` lists `schema` first in its defaults), and the
    resolver its help template calls for the keys' help strings."""
    from harness.config.help import register_resolver

    ConfigStore.instance().store(name="schema", node=Config)
    register_resolver()


def _unknown_keys(node: Any, schema: type, prefix: str = "") -> Iterator[str]:
    """Keys that `+key=value` added although the schema has no such field."""
    hints = typing.get_type_hints(schema)
    for key in node.keys():
        if key not in hints:
            yield f"{prefix}{key}"
            continue
        hint, value = hints[key], node[key]
        if dataclasses.is_dataclass(hint) and isinstance(value, DictConfig):
            yield from _unknown_keys(value, hint, f"{prefix}{key}.")
        elif typing.get_origin(hint) is dict and dataclasses.is_dataclass(typing.get_args(hint)[1]):
            for name in value.keys():
                yield from _unknown_keys(value[name], typing.get_args(hint)[1], f"{prefix}{key}.{name}.")


def _drop_modes_not_chosen(cfg: DictConfig) -> None:
    """Every mode's YAML says which CLIP vector it reads, so an entry without one holds keys that a preset set for a
    mode the conditioning list does not choose: `experiment=quick conditioning=[glide]` leaves quick's `combined`
    keys behind (the command line cannot: Hydra refuses keys of modes not chosen). They are dropped with a warning;
    a name that is no mode at all is an error."""
    modes = cfg.get("conditioning") or {}
    known = sorted(path.stem for path in (CONF_DIR / "conditioning").glob("*.yaml"))
    for name in [name for name in modes if OmegaConf.is_missing(modes[name], "vector_source")]:
        if name not in known:
            raise ConfigError(f"conditioning.{name}", f"no such mode; choose from {', '.join(known)}")
        log.warning("conditioning.%s: set but not chosen in conditioning=[...]; ignored", name)
        with open_dict(modes):
            del modes[name]


def _arm_modes_not_chosen(cfg: DictConfig) -> None:
    """An arm restricted to modes (`arms.fixed.modes=[unclip]`) keeps the restriction when the run chooses fewer
    modes: a mode it names that is not chosen is dropped with a warning; a name that is no mode is an error."""
    known = {path.stem for path in (CONF_DIR / "conditioning").glob("*.yaml")}
    chosen = set(cfg.get("conditioning") or {})
    for arm, node in (cfg.get("arms") or {}).items():
        modes = list(node.get("modes") or [])
        for mode in modes:
            if mode not in known | chosen:
                raise ConfigError(f"arms.{arm}.modes", f"no mode {mode!r}; choose from {', '.join(sorted(known))}")
        if any(mode not in chosen for mode in modes):
            log.warning("arms.%s.modes: %s not chosen in conditioning=[...]; ignored", arm,
                        ", ".join(m for m in modes if m not in chosen))
            node.modes = [m for m in modes if m in chosen]


def validate(cfg: DictConfig) -> Config:
    """Turn a composed config into checked dataclasses, or raise one `ConfigError` naming the first bad key."""
    _drop_modes_not_chosen(cfg)
    _arm_modes_not_chosen(cfg)
    for key in _unknown_keys(cfg, Config):
        raise ConfigError(key, "no such key in the schema (harness/config/schema.py)")
    try:
        typed: Config = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    except Exception as exc:  # OmegaConf reports the key in `full_key`
        key = getattr(exc, "full_key", None) or "config"
        raise ConfigError(key, str(exc).splitlines()[0]) from None
    for key, message in problems(typed):
        raise ConfigError(key, message)
    return typed


def default_report() -> ReportConfig:
    """The report settings a run gets when it sets none: the schema's, with the research defaults (each question's
    primary contrasts) from conf/report/default.yaml."""
    merged = OmegaConf.merge(OmegaConf.structured(ReportConfig), OmegaConf.load(CONF_DIR / "report" / "default.yaml"))
    return OmegaConf.to_object(merged)
