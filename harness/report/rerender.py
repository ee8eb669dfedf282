"""`python -m harness.report.rerender RUN_DIR`: a finished run's report written again, from its tables, by this code.

Every number of the report is a function of the run's per-prompt table (per_prompt.csv, or per_prompt.csv.gz
where a committed result keeps a large one compressed). When the report code
changes (a new primary contrast, another section, a fixed sentence), this rewrites the run's metrics.csv and
metrics.parquet, report.md, curves.png and the answers in summary.json, without training or sampling anything.
The settings are the run's own (`report.*` in its config.yaml; defaults for settings it predates).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from omegaconf import OmegaConf

from harness.errors import HarnessError, print_or_exit
from harness.metrics.estimate import Sweep, read_table, table_file
from harness.report.pilot import recipe_of
from harness.report.write import report_settings, write_report

REQUIRED = ("per_prompt.csv", "summary.json", "config.yaml")


def rerender(run_dir: Path, report_defaults: bool = False) -> Path:
    """Rewrite the report of the run in `run_dir` from its per-prompt table; returns the path of report.md.
    `report_defaults`: read it with this code's default report settings (primary contrasts, levels) rather than
    those the run recorded, for a run that kept the defaults of its day."""
    run_dir = Path(run_dir)
    table = table_file(run_dir, REQUIRED[0])
    missing = next((name for name in REQUIRED[1:] if not (run_dir / name).is_file()), None if table else REQUIRED[0])
    if missing:
        raise HarnessError(f"{run_dir / missing}: not found; a run folder needs {', '.join(REQUIRED)}")
    config = OmegaConf.load(run_dir / "config.yaml")
    settings = report_settings(config, defaults=report_defaults)
    per_prompt = read_table(table)  # pandas reads a .gz as it is
    metrics = Sweep(per_prompt, settings.confidence).rows(OmegaConf.select(config, "sweep.samples_per_prompt"))
    metrics.to_csv(run_dir / "metrics.csv", index=False)
    metrics.to_parquet(run_dir / "metrics.parquet", index=False)
    summary = {k: v for k, v in json.loads((run_dir / "summary.json").read_text()).items() if k != "answers"}
    images = {prefix: {p.stem.removeprefix(prefix): p for p in sorted(run_dir.glob(f"{prefix}*.png"))}
              for prefix in ("grid_", "sheet_")}
    return write_report(metrics, summary, run_dir, per_prompt, grids=images["grid_"], sheets=images["sheet_"],
                        settings=settings, recipe=recipe_of(config))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="unclip-harness rerender",
                                     description="Write a finished run's report again from its per-prompt table.")
    parser.add_argument("run_dir", type=Path, help="the run folder (holds per_prompt.csv, summary.json, config.yaml)")
    parser.add_argument("--report-defaults", action="store_true",
                        help="this code's default report settings instead of those in the run's config.yaml")
    args = parser.parse_args(argv)
    print_or_exit(lambda: rerender(args.run_dir, args.report_defaults))


if __name__ == "__main__":
    main()
