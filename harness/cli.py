"""`python -m harness [overrides]`: validate the whole config, then run the experiment's pipeline.

Hydra reports a bad override as a paragraph with a search path and a hint about HYDRA_FULL_ERROR. Before
handing the command line to Hydra we compose every combination it asks for with the compose API and check
it against the schema, so a wrong key, type, value or group choice fails first, in one line naming the key.
"""

from __future__ import annotations

import itertools
import logging
import re
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from harness.config import Config, register_configs, validate
from harness.errors import ConfigError, HarnessError

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
MAX_PREFLIGHT_JOBS = 64
log = logging.getLogger("harness")


def compose(overrides: list[str] = ()) -> Config:  # type: ignore[assignment]
    """Compose and validate a config as `python -m harness <overrides>` would (for tests and tools)."""
    from hydra import compose as hydra_compose, initialize_config_dir

    register_configs()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = hydra_compose(config_name="config", overrides=list(overrides))
    except Exception as exc:  # Hydra and OmegaConf raise a handful of types with multi-line messages
        raise _one_line_error(exc) from None
    return validate(cfg)


def _one_line_error(exc: Exception) -> ConfigError:
    text = str(exc)
    missing = re.search(r"Could not find '([^/']+)/([^']+)'", text)
    if missing:
        group, choice = missing.groups()
        options = sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
        return ConfigError(group, f"no option {choice!r}; choose from {', '.join(options)}")
    cause = exc.__cause__ or exc  # OmegaConf's error, with the key in `full_key`, sits under Hydra's
    key = getattr(cause, "full_key", None) or getattr(exc, "full_key", None)
    override = re.search(r"override '([^']+)'", text)
    if not key and override:
        key = override.group(1)
    lines = [ln.strip() for ln in str(cause).splitlines() if ln.strip()]
    return ConfigError(key or "config", lines[0] if lines else text)


def _preflight(argv: list[str]) -> None:
    """Compose each job of the command line (capped) so bad input fails before any work starts."""
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser

    args, _ = get_args_parser().parse_known_args(argv)
    if args.help or args.hydra_help or args.info or args.shell_completion:
        return
    own = [o for o in args.overrides if not o.lstrip("+~").startswith(("hydra.", "hydra/"))]
    try:
        parsed = OverridesParser.create().parse_overrides(own)
    except Exception as exc:
        raise HarnessError(f"command line: {str(exc).splitlines()[0]}") from None
    choices = []
    for override, text in zip(parsed, own):
        if override.is_sweep_override():
            prefix = text.split("=", 1)[0]
            choices.append([f"{prefix}={v}" for v in override.sweep_string_iterator()])
        else:
            choices.append([text])
    for job in itertools.islice(itertools.product(*choices), MAX_PREFLIGHT_JOBS):
        compose(list(job))


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def _hydra_main(cfg: DictConfig) -> None:
    from harness import pipeline

    try:
        pipeline.run(validate(cfg), Path(HydraConfig.get().runtime.output_dir))
    except HarnessError as exc:
        log.error("error: %s", exc)
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    register_configs()
    try:
        _preflight(sys.argv[1:])
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    _hydra_main()
