"""`unclip-harness recipe OLD NEW`: may a new training recipe (fewer steps, no EMA, ...) replace the old one?

A recipe change trains other weights, so one seed's numbers cannot judge it: the training seed moves the
metrics more than most recipe changes do. The check is seed-level non-inferiority. For every line both runs
sampled (glide, unclip (per_sample), ...) and every metric of `report.recipe_check` (accuracy, prompts drawn
right, binding), new - old at the check's guidance scale gets the report's crossed seeds x prompts interval
(harness/metrics/intervals.py), the two recipes' decoders as independent groups with their own seeds, on the
prompts both runs scored. The new recipe is accepted when every one-sided lower bound, at the report's level,
lies above -margin. Accepting only when all of them pass is an intersection-union test: no multiplicity
correction is needed, and each check more makes acceptance harder, never easier.

Both runs must score the same prompts (the same sweep and data settings): sample the recipe in use under the
candidate's preset, which trains nothing when its decoders are cached.

    unclip-harness recipe runs/power_1500 runs/power_750 --out results/benchmarks/recipe_750.md
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from harness.config.schema import RecipeCheckConfig
from harness.errors import HarnessError, print_or_exit
from harness.line import Line
from harness.metrics.catalogue import label
from harness.metrics.estimate import Sweep, align, read_table, table_file
from harness.metrics.intervals import Group, Interval, grouped_interval
from harness.report.join import CONFIG, check_same_prompts
from harness.report.markdown import fmt, table
from harness.report.write import report_settings


@dataclass(frozen=True)
class Check:
    line: Line
    metric: str
    difference: Interval | None  # new - old, two-sided at 1 - 2 alpha (each end a one-sided bound); None: n/a
    margin: float

    @property
    def passes(self) -> bool:
        """Shown non-inferior: a lower bound over training seeds above -margin. A check the new run cannot make
        (its line or metric missing) or one without the seed variance fails: acceptance needs every check."""
        d = self.difference
        return d is not None and d.carries_seeds and math.isfinite(d.low) and d.low > -self.margin

    @property
    def worse(self) -> bool:
        """Shown worse by more than the margin: the one-sided upper bound (the interval's high end) below it."""
        d = self.difference
        return d is not None and d.carries_seeds and math.isfinite(d.high) and d.high < -self.margin


@dataclass(frozen=True)
class RunFolder:
    """A finished run folder and its resolved config, read once."""
    path: Path
    config: DictConfig

    @classmethod
    def load(cls, path: Path) -> RunFolder:
        if not (path / CONFIG).is_file():
            raise HarnessError(f"{path}: no config.yaml; a recipe check needs two finished run folders")
        return cls(path, OmegaConf.load(path / CONFIG))

    @property
    def recipe(self) -> str:
        """The decoder recipe, in words (a run folder of an older day may lack a field)."""
        def pick(key: str) -> object:
            return OmegaConf.select(self.config, f"decoder.{key}", default="?")

        return f"decoder {pick('size')}, {pick('train.steps')} steps, EMA {pick('train.ema_decay')}"

    def sweep(self) -> Sweep:
        found = table_file(self.path, "per_prompt.csv")
        if found is None:
            raise HarnessError(f"{self.path}: no per_prompt.csv; a recipe check needs two finished run folders")
        return Sweep(read_table(found))


def difference(old: Sweep, new: Sweep, line: Line, guidance: float, metric: str,
               confidence: float) -> Interval | None:
    """new - old of one line's metric at one guidance scale, each recipe's decoder its own group of seeds, paired
    over prompts as every contrast of the report is (`align`); None when the new run lacks the cell."""
    cells = [sweep.table(sweep.cell(line, guidance, metric)) for sweep in (new, old)]
    if any(t is None for t in cells):
        return None
    aligned = align(cells, [("new", ""), ("old", "")])
    if aligned is None:
        return None
    new_rows, old_rows = aligned
    return grouped_interval([Group(new_rows), Group(-old_rows)], confidence)


def check(old_run: RunFolder, new_run: RunFolder, settings: RecipeCheckConfig, confidence: float) -> list[Check]:
    """Every non-inferiority check of `new_run` against `old_run`: each line and metric the old run measured at
    the check's guidance scale."""
    check_same_prompts(old_run.path, old_run.config, new_run.path, new_run.config,
                       "sample the old recipe under the new run's preset so both score one prompt set")
    old, new = old_run.sweep(), new_run.sweep()
    wanted = [(line, metric) for line in old.curves() for metric in settings.metrics
              if old.table(old.cell(line, settings.guidance, metric)) is not None]
    if not wanted:
        raise HarnessError(f"{old_run.path}: no line has {', '.join(settings.metrics)} at guidance "
                           f"{settings.guidance:g} (report.recipe_check)")
    for run, sweep in ((old_run.path, old), (new_run.path, new)):
        single = next((line for line, _ in wanted if len(sweep.seeds(line)) == 1), None)
        if single is not None:
            raise HarnessError(f"{run}: {single.label} has one training seed; a recipe check needs two or more on "
                               "each side, since the seed moves these metrics more than most recipe changes do")
    one_sided = 1 - 2 * (1 - confidence)  # the two-sided level whose lower end is the one-sided bound
    return [Check(line, metric, difference(old, new, line, settings.guidance, metric, one_sided), settings.margin)
            for line, metric in wanted]


def _numbers(d: Interval | None) -> list[str]:
    if d is None:
        return ["n/a: not in the new run", "", "", "", ""]
    return [fmt(d.value), fmt(d.low, d.value), fmt(d.high, d.value), str(d.seeds), str(d.prompts)]


def render(old_run: RunFolder, new_run: RunFolder, checks: Sequence[Check], settings: RecipeCheckConfig,
           confidence: float, command: str) -> list[str]:
    """The check as markdown: the outcome in one sentence, then one row per line and metric."""
    failed = [c for c in checks if not c.passes]
    seeds = [c.difference.seeds for c in checks if c.difference is not None] or [0]
    worse = sum(c.worse for c in checks)
    outcome = ("**accepted**: every lower bound lies above the margin" if not failed else
               f"**not accepted**: {len(failed)} of {len(checks)} lower bounds do not lie above the margin"
               + (f"; in {worse}, each read alone, the new recipe is worse by more than the margin (its upper "
                  "bound lies below it too)" if worse else ""))
    rows = [[c.line.label, label(c.metric), *_numbers(c.difference), "yes" if c.passes else "no",
             "yes" if c.worse else "no"] for c in checks]
    old, new = old_run.path.as_posix(), new_run.path.as_posix()
    return [f"# Recipe check: {new} against {old}", "", f"Command: `{command}`", "",
            f"- old: {old} ({old_run.recipe})", f"- new: {new} ({new_run.recipe})",
            f"- new - old at guidance {settings.guidance:g}, one-sided {confidence:.0%} lower bound over training "
            f"seeds and shared prompts; margin {settings.margin:g} (`report.recipe_check`)", "",
            f"New recipe {outcome}.", "",
            *table(["line", "metric", "new - old", "lower bound", "upper bound", "seeds (fewer side)", "prompts",
                    "lower above -margin", "upper below -margin"], rows), "",
            "Every check must pass (an intersection-union test). A check that does not pass is not by itself "
            f"evidence that the new recipe is worse: with {min(seeds)} seeds on its fewer side the bound may be too "
            "loose to show non-inferiority at this margin. Where the upper bound lies below -margin too, it is.", ""]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="unclip-harness recipe", description=__doc__.split("\n\n")[0])
    parser.add_argument("old", type=Path, help="a finished run of the recipe in use (two or more training seeds)")
    parser.add_argument("new", type=Path, help="a finished run of the candidate recipe (two or more training seeds)")
    parser.add_argument("--margin", type=float, help="default: the old run's report.recipe_check.margin")
    parser.add_argument("--out", type=Path, help="also write the table here (markdown)")
    args = parser.parse_args(argv)

    def run() -> str:
        old, new = RunFolder.load(args.old), RunFolder.load(args.new)
        report = report_settings(old.config)
        settings = report.recipe_check
        if args.margin is not None:
            if not 0 < args.margin <= 1:
                raise HarnessError(f"--margin: must lie in (0, 1], got {args.margin:g}")
            settings.margin = args.margin
        checks = check(old, new, settings, report.confidence)
        command = " ".join(["unclip-harness recipe", *(sys.argv[1:] if argv is None else argv)])
        text = "\n".join(render(old, new, checks, settings, report.confidence, command))
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text)
        return text

    print_or_exit(run)


if __name__ == "__main__":
    main()
