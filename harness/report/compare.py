"""`unclip-harness compare RUN [RUN ...] --out DIR`: finished runs side by side.

Writes into DIR:
- `compare.md`: the runs with their provenance (commit, CPU, packages, date), the settings in which their configs
  differ, each primary contrast of Key findings per run (estimate, interval, outcome), and the first fidelity and
  diversity measures of every line per run;
- `compare_metrics.csv`: every pooled cell of every run (line, guidance, metric) with its interval, one row each;
- `forest.png`: the Key-findings contrasts per run, each with its interval;
- `pooled/`: one report of all of them when they are one study split by training seed or by CLIP variant
  (`harness.report.join`), with intervals over every run's seeds.
The run folders are only read.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import OmegaConf

from harness.errors import HarnessError, print_or_exit
from harness.line import COLUMNS as LINE_COLUMNS, Line
from harness.metrics.catalogue import DIVERSITY, FIDELITY
from harness.metrics.estimate import POOLED, read_table, table_file
from harness.report.figures import plot_forest
from harness.report.join import CONFIG, join_runs, missing_result
from harness.report.markdown import fmt, table
from harness.report.multirun import shard
from harness.runtime.provenance import describe

# Settings that differ between any two runs without changing what they measure.
UNCOMPARED = ("cache_dir", "logger.", "hydra.", "workers", "progress")


def flat_config(folder: Path) -> dict[str, Any]:
    container = OmegaConf.to_container(OmegaConf.load(folder / CONFIG), resolve=False)
    return {k: v for k, v in pd.json_normalize(container, sep=".").iloc[0].to_dict().items()
            if not k.startswith(UNCOMPARED)}


def config_differences(folders: Sequence[Path]) -> list[list[str]]:
    """[setting, value in each run] for every setting the runs do not share."""
    configs = [flat_config(folder) for folder in folders]
    keys = sorted(set().union(*configs))
    return [[key, *(json.dumps(c.get(key), default=str) if key in c else "-" for c in configs)]
            for key in keys if len({json.dumps(c.get(key), default=str) for c in configs}) > 1]


def primary_rows(summaries: Sequence[dict]) -> tuple[list[str], dict[str, list[dict | None]]]:
    """The Key-findings contrasts of the runs, by statement, each run's entry (None where it has none)."""
    order: list[str] = []
    by_run = []
    for summary in summaries:
        rows = {}
        for entry in ((summary.get("answers") or {}).get("key_findings") or {}).get("primary", []):
            key = f"{entry['question'].upper()} {entry['statement']}"
            rows[key] = entry
            if key not in order:
                order.append(key)
        by_run.append(rows)
    return order, {key: [rows.get(key) for rows in by_run] for key in order}


def _cell(entry: dict | None) -> str:
    if entry is None:
        return "-"
    e = entry.get("estimate") or {}
    if e.get("value") is None:
        return entry.get("outcome") or "n/a"
    return f"{fmt(e['value'])} [{fmt(e['low'])}, {fmt(e['high'])}]: {entry.get('outcome', '')}"


def metric_rows(folders: Sequence[Path], labels: Sequence[str]) -> pd.DataFrame:
    """Every run's pooled cells (prompt kind `all`; seeds pooled, or the one seed), one row per cell and run."""
    parts = []
    for folder, label in zip(folders, labels):
        metrics = read_table(table_file(folder, "metrics.csv"))
        metrics = metrics[metrics["prompt_kind"] == POOLED]
        pooled = metrics[metrics["train_seed"] == POOLED]
        single = metrics[~metrics.set_index([*LINE_COLUMNS, "guidance", "metric"]).index.isin(
            pooled.set_index([*LINE_COLUMNS, "guidance", "metric"]).index)]
        chosen = pd.concat([pooled, single.drop_duplicates([*LINE_COLUMNS, "guidance", "metric"])])
        lines = chosen[list(LINE_COLUMNS)].to_dict("records")
        parts.append(chosen.assign(run=label, line=[Line.of(row).label for row in lines]))
    return pd.concat(parts, ignore_index=True)[["run", "line", "guidance", "metric", "value", "ci_low", "ci_high",
                                                "n_prompts", "n_seeds"]]


def compare(run_dirs: Sequence[Path], out_dir: Path) -> Path:
    folders = [Path(d) for d in run_dirs]
    for folder in folders:
        missing = missing_result(folder)
        if missing:
            raise HarnessError(f"{folder / missing}: not found; compare needs finished run folders")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = [f"run {i}" for i in range(len(folders))]
    summaries = [json.loads((folder / "summary.json").read_text()) for folder in folders]
    lines = ["# Runs compared", "", *table(["run", "folder", "experiment"],
                                            [[label, str(folder), str(s.get("experiment", ""))]
                                             for label, folder, s in zip(labels, folders, summaries)])]
    provenance = [dict(describe(s["provenance"])) if s.get("provenance") else {} for s in summaries]
    fields = list(dict.fromkeys(key for p in provenance for key in p))
    lines += ["## Provenance", "", *(table(["", *labels], [[f, *(p.get(f, "not recorded") for p in provenance)]
                                                           for f in fields]) if fields else
                                     ["Not recorded by these runs.", ""])]
    differences = config_differences(folders)
    lines += ["## Settings that differ", "", *(table(["setting", *labels], differences) if differences else
                                               ["None: the runs share every setting that changes a result.", ""])]
    order, entries = primary_rows(summaries)
    lines += ["## Key-findings contrasts", "", *table(["contrast", *labels],
                                                       [[key, *map(_cell, entries[key])] for key in order])]
    forest = plot_forest(order, entries, labels, out_dir / "forest.png")
    if forest is not None:
        lines += [f"![forest]({forest.name})", ""]
    cells = metric_rows(folders, labels)
    cells.to_csv(out_dir / "compare_metrics.csv", index=False)
    for metric in [m for m in (*FIDELITY[:1], *DIVERSITY[:1]) if m in set(cells["metric"])]:
        wide = cells[cells["metric"] == metric].pivot_table(index=["line", "guidance"], columns="run",
                                                            values="value", aggfunc="first")
        lines += [f"## {metric} per line and guidance", "",
                  *table(["line", "guidance", *wide.columns],
                         [[line, f"{g:g}", *(fmt(v) for v in row)] for (line, g), row in
                          zip(wide.index, wide.to_numpy())])]
    lines += ["Every pooled cell of every run, with its interval: `compare_metrics.csv`.", ""]
    if len({shard(OmegaConf.load(folder / CONFIG)) for folder in folders}) == len(folders) and len(folders) > 1:
        try:
            pooled = join_runs(folders, out_dir / "pooled")
            lines += ["## Pooled", "", f"The runs are one study split by training seed or CLIP variant: their "
                      f"joint report, with intervals over every run's seeds, is [{pooled.relative_to(out_dir)}]"
                      f"({pooled.relative_to(out_dir)}).", ""]
        except HarnessError as exc:
            lines += ["## Pooled", "", f"Not pooled: {exc}", ""]
    path = out_dir / "compare.md"
    path.write_text("\n".join(lines))
    return path


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="unclip-harness compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", type=Path, nargs="+", help="finished run folders")
    parser.add_argument("--out", type=Path, required=True, help="folder for compare.md and its figures")
    args = parser.parse_args(argv)
    print_or_exit(lambda: compare(args.run_dirs, args.out))


if __name__ == "__main__":
    main()
