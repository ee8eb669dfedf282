"""Pilot studies: the training-seed variance of each primary contrast, measured once on a multi-seed run of a
recipe and borrowed by one-seed runs of the same recipe.

On this project's presets the training seed, not the prompt, dominates most contrasts between modes, so a
one-seed interval (prompts only) covers the truth about the *modes* far less often than it says. A run with
several seeds estimates the seed variance itself. A run with one seed can state a mode-level verdict only by
borrowing it: `with_pilot` adds a pilot's seed variance to the run's own prompt variance, with the pilot's
degrees of freedom. A pilot applies only to a run whose recipe (the fields that key the data, the CLIP, the
prior and the decoders; `recipe_of`) is the pilot's own; any other one-seed run reads its contrasts as facts
about the decoders it trained.

Pilots ship inside the package (`conf/pilots/<name>.json`, in the wheel as `harness/conf/pilots/`), each made
from a committed run:

    python -m harness.report.pilot build results/cpu --name cpu-5seeds   # write the pilot file
    python -m harness.report.pilot plan cpu-5seeds --seeds 1 5 10 20 --prompts 72 144
                                                                        # MDD of each contrast per design
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from harness.config import Config, PrimaryContrast, key_fields
from harness.config.fields import PILOTS_DIR
from harness.config.schema import AUTO_PILOT, NO_PILOT
from harness.errors import HarnessError, print_or_exit
from harness.line import Line
from harness.metrics.intervals import CONFIDENCE, Components

RECIPE_STAGES = ("clip", "prior", "decoder")


def recipe_of(config: Config | DictConfig) -> dict[str, Any]:
    """The fields that decide how a run's decoders are trained (data, CLIP, prior, decoder recipe), as the cache
    keys them: two runs with the same recipe train from the same distribution of decoders."""
    if isinstance(config, DictConfig):
        chosen = {k: config[k] for k in ("data", "clip", "prior", "decoder") if k in config}
        config = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(Config), chosen))
    stages = (f"data.{config.data.source}", *RECIPE_STAGES)
    return json.loads(json.dumps({stage: key_fields(config, stage) for stage in stages}, sort_keys=True,
                                 default=str))


def fingerprint(recipe: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def contrast_key(spec: PrimaryContrast, metric: str) -> str:
    """What identifies a primary contrast across runs: its kind, curves, metric and settings (not its question
    label or wording)."""
    lines = [Line.parse(side).label if side else "" for side in (spec.a, spec.b, spec.a_base, spec.b_base)]
    parts = [spec.contrast, *lines[:2], metric, spec.b_metric, *lines[2:]]
    if spec.contrast == "difference":
        parts.append(f"g={spec.guidance:g}")
    return "|".join(parts)


@dataclass(frozen=True)
class Pilot:
    name: str
    source: str  # the run it was measured on, in words
    recipe: dict[str, Any]
    contrasts: dict[str, Components]  # contrast_key -> components

    @property
    def seeds(self) -> int:
        """The training seeds its contrasts were measured over (the most any has)."""
        return max((c.seeds for c in self.contrasts.values()), default=0)

    def components(self, spec: PrimaryContrast, metric: str) -> Components | None:
        return self.contrasts.get(contrast_key(spec, metric))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "fingerprint": fingerprint(self.recipe),
                "recipe": self.recipe,
                "contrasts": {k: dataclasses.asdict(c) for k, c in self.contrasts.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Pilot:
        return cls(data["name"], data["source"], data["recipe"],
                   {k: Components(**v) for k, v in data["contrasts"].items()})


def load(path: Path) -> Pilot:
    try:
        return Pilot.from_json(json.loads(Path(path).read_text()))
    except (OSError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise HarnessError(f"{path}: not a pilot file ({exc})") from None


def shipped() -> list[Pilot]:
    return [load(path) for path in sorted(PILOTS_DIR.glob("*.json"))]


def _first_difference(a: Any, b: Any, prefix: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return _first_difference(a.get(key), b.get(key), f"{prefix}{key}.")
    return prefix.rstrip(".")


def choose(setting: str, recipe: dict[str, Any] | None) -> tuple[list[Pilot], str]:
    """The pilots a run borrows from (`report.pilot`: auto, none, a shipped pilot's name or a pilot file), most
    training seeds first, and, when none applies, why in words. A contrast is read from the first that measured
    it (`components_of`): with auto, every shipped pilot of the run's recipe."""
    if setting == NO_PILOT:
        return [], "report.pilot is none"
    if recipe is None:
        return [], "the run's recipe is unknown"
    if setting == AUTO_PILOT:
        candidates = shipped()
    else:
        by_name = {p.name: p for p in shipped()}
        candidates = [by_name[setting]] if setting in by_name else [load(Path(setting))]
    matching = [pilot for pilot in candidates if pilot.recipe == recipe]
    if matching:  # several pilots of one recipe: the one with the most training seeds estimates best
        return sorted(matching, key=lambda pilot: -pilot.seeds), ""
    if not candidates:
        return [], "no pilot study is shipped"
    closest = candidates[0]
    return [], (f"no pilot study of this recipe (pilot {closest.name} differs in "
                f"{_first_difference(recipe, closest.recipe)})")


def components_of(pilots: Sequence[Pilot], spec: PrimaryContrast, metric: str) -> tuple[Pilot, Components] | None:
    """The first of `pilots` (most seeds first) that measured the contrast, with its components."""
    return next(((p, parts) for p in pilots if (parts := p.components(spec, metric)) is not None), None)


# ---------------------------------------------------------------- building and planning


def build(run_dir: Path, name: str, report_defaults: bool = False) -> Pilot:
    """A pilot from a finished multi-seed run: the variance components of each of its primary contrasts (this
    code's default contrasts with `report_defaults`, for a run that kept the defaults of its day)."""
    from harness.metrics.estimate import Sweep, read_table, table_file
    from harness.report.primary import estimate_primary
    from harness.report.write import report_settings

    run_dir = Path(run_dir)
    table = table_file(run_dir, "per_prompt.csv")
    if table is None or not (run_dir / "config.yaml").is_file():
        raise HarnessError(f"{run_dir}: a pilot needs a finished run folder (per_prompt.csv and config.yaml)")
    config = OmegaConf.load(run_dir / "config.yaml")
    settings = report_settings(config, defaults=report_defaults)
    sweep = Sweep(read_table(table), settings.confidence)
    contrasts = {}
    for spec in settings.primary:
        result = estimate_primary(sweep, spec, settings)
        if result.estimate is not None and result.estimate.components is not None:
            contrasts[contrast_key(spec, result.metric)] = result.estimate.components
    if not contrasts:
        raise HarnessError(f"{run_dir}: no primary contrast has two or more training seeds on every side; a pilot "
                           "needs a multi-seed run")
    pilot = Pilot(name, "", recipe_of(config), contrasts)
    prompts = max(c.prompts for c in contrasts.values())
    source = (f"{run_dir.as_posix()} ({config.get('experiment_name', 'run')}: {pilot.seeds} training seeds x "
              f"{prompts} prompts)")
    return dataclasses.replace(pilot, source=source)


def plan_rows(pilot: Pilot, seeds: Sequence[int], prompts: Sequence[int], family: int,
              confidence: float = CONFIDENCE) -> list[dict[str, Any]]:
    """Each contrast's minimal detectable difference for every design (seeds per decoder x prompts), at the
    family's strictest Holm level."""
    alpha = (1 - confidence) / max(family, 1)
    return [{"contrast": key, "seeds": s, "prompts": p, "sigma_seed": math.sqrt(c.seed),
             "seed_share": c.seed / s / c.variance(s, p), "detectable": c.detectable(s, p, alpha)}
            for key, c in pilot.contrasts.items() for s in seeds for p in prompts]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="unclip-harness pilot", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("build", help="measure a pilot's variance components on a finished multi-seed run")
    make.add_argument("run_dir", type=Path)
    make.add_argument("--name", required=True)
    make.add_argument("--out", type=Path, help="the pilot file (default: the package's pilots/<name>.json)")
    make.add_argument("--report-defaults", action="store_true",
                      help="this code's default primary contrasts instead of those in the run's config.yaml")
    size = sub.add_parser("plan", help="each contrast's minimal detectable difference for candidate designs")
    size.add_argument("pilot", help="a shipped pilot's name or a pilot file")
    size.add_argument("--seeds", type=int, nargs="+", default=[1, 5, 10])
    size.add_argument("--prompts", type=int, nargs="+", default=[72, 144])
    size.add_argument("--family", type=int, default=6, help="primary contrasts in the Holm family")
    args = parser.parse_args(argv)

    def run() -> Path:
        if args.command == "build":
            pilot = build(args.run_dir, args.name, args.report_defaults)
            out = args.out or PILOTS_DIR / f"{args.name}.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(pilot.to_json(), indent=2) + "\n")
            print(f"{len(pilot.contrasts)} contrasts from {pilot.source}")
            return out
        by_name = {p.name: p for p in shipped()}
        pilot = by_name[args.pilot] if args.pilot in by_name else load(Path(args.pilot))
        print(f"pilot {pilot.name}: {pilot.source}; minimal detectable difference at the family's strictest level "
              f"(alpha 0.05 / {args.family}), 80% power")
        print(f"{'contrast':<70} {'seeds':>5} {'prompts':>7} {'seed share':>10} {'detectable':>10}")
        for row in plan_rows(pilot, args.seeds, args.prompts, args.family):
            print(f"{row['contrast'][:70]:<70} {row['seeds']:>5} {row['prompts']:>7} {row['seed_share']:>10.0%} "
                  f"{row['detectable']:>10.3f}")
        return PILOTS_DIR / f"{pilot.name}.json"

    print_or_exit(run)


if __name__ == "__main__":
    main()
