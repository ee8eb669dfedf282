"""The run as a wandb dashboard: the report's run, with what the runs table sorts by and what a reader looks at.

- Flat scalar summary keys, so that the runs table can sort, filter and plot by a result: each primary contrast
  (`primary/q2b/estimate`, `.../low`, `.../high`, `.../adjusted_p`, `.../detectable`, `.../outcome`) and each
  line's value of each metric at each guidance, training seeds pooled (`fid/unclip (per_sample)/g3`).
- Tags: the experiment, `report` and the run's modes.
- The metrics table; each line-plot metric against guidance with its interval (a line per curve, and its
  bounds as two more); fidelity against diversity, the report's curves, as a wandb plot.
- The figures as images with captions; the report's files as an artifact made from the metrics and sweep; every
  cache artifact the run read, with its inputs, so that the lineage runs from the data to the report.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from harness.line import COLUMNS as LINE_COLUMNS, REAL, Line
from harness.metrics.catalogue import DIVERSITY, FIDELITY, names
from harness.metrics.estimate import POOLED
from harness.runtime import tracking
from harness.runtime.context import Context

REPORT_FILES = ("report.md", "summary.json", "metrics.parquet", "metrics.csv", "per_prompt.csv", "config.yaml")
_PRIMARY_FIELDS = ("adjusted_p", "detectable", "outcome", "family")
_CAPTIONS = {  # by the figure's name up to its first underscore-separated part that names a line or kind
    "curves": "fidelity against diversity, one curve per line over the guidance scales, 95% intervals both ways; "
              "the star is the real images' ceiling",
    "curves_arms": "one mode under each of its sampling arms: fidelity against diversity",
    "noise_scales": "each arm sampled at several noise scales: diversity and fidelity against the scale (the Gaussian "
                    "controls: x the prior draws' spread; cads: x the condition's own std), the mode's own sampling "
                    "dotted",
    "grid": "rows: lines; columns: guidance scales; the same prompts and noise in every tile",
    "sheet": "a row per prompt, every sample at each guidance scale: what guidance fixes and what diversity it costs",
    "forest": "the Key-findings contrasts, each a − b with its interval; hollow: exploratory, outside the Holm family",
    "q3_diversity": "Q3: the diversity measure against the guidance scale, per line, with intervals",
    "q4_attention_layers": "Q4: the share of attention on the CLIP and on the text tokens at each layer",
}


def primary_keys(summary: dict) -> dict[str, Any]:
    """The measured primary contrasts as flat keys, `primary/<question><letter>/<field>`: the letter counts the
    question's contrasts in the config's order (q2a, q2b), and is left out for a question with one."""
    entries = summary.get("answers", {}).get("key_findings", {}).get("primary", [])
    per_question = Counter(entry["question"] for entry in entries)
    flat: dict[str, Any] = {}
    seen: Counter[str] = Counter()
    for entry in entries:
        question = entry["question"]
        seen[question] += 1
        label = question + (chr(ord("a") + seen[question] - 1) if per_question[question] > 1 else "")
        estimate = entry.get("estimate")
        if not estimate or estimate.get("value") is None:
            continue
        prefix = f"primary/{label}/"
        flat[prefix + "statement"] = entry["statement"]
        flat.update({prefix + "estimate": estimate["value"], prefix + "low": estimate["low"],
                     prefix + "high": estimate["high"]})
        flat.update({prefix + field: entry[field] for field in _PRIMARY_FIELDS if entry.get(field) is not None})
    return flat


def metric_keys(metrics: pd.DataFrame) -> dict[str, float]:
    """Each line's pooled value (training seeds and every prompt) of each metric at each guidance scale, as
    `<metric>/<line label>/g<guidance>`; the real images as `<metric>/real` (the ceiling) and
    `<metric>/real (floor)`."""
    rows = metrics[(metrics["prompt_kind"] == POOLED) & metrics["train_seed"].astype(str).isin([POOLED, "-"])]
    flat = {}
    for row in rows.to_dict("records"):
        line = Line.of(row)
        at = "" if line.is_real else f"/g{float(row['guidance']):g}"
        flat[f"{row['metric']}/{line.label}{at}"] = float(row["value"])
    return flat


def frontier(curves: pd.DataFrame, fidelity: str, diversity: str) -> pd.DataFrame:
    """Per line and guidance scale, the diversity reached (column `diversity`) and the fidelity with its
    interval (`value`, `ci_low`, `ci_high`): the points of the report's curves."""
    keys = ["line", "guidance"]
    x = curves[curves["metric"] == diversity].set_index(keys)["value"].rename(diversity)
    y = curves[curves["metric"] == fidelity].set_index(keys)[["value", "ci_low", "ci_high"]]
    return y.join(x, how="inner").reset_index()


def caption(figure: Path) -> str:
    """What a figure of the run folder shows, by its name (`grid_free` -> the grid caption, for free prompts)."""
    stem = figure.stem
    prefix = max((p for p in _CAPTIONS if stem == p or stem.startswith(p + "_")), key=len, default="")
    what = stem[len(prefix) + 1:].replace("_", " ") if prefix else stem
    return f"{what}: {_CAPTIONS[prefix]}" if prefix and what else _CAPTIONS.get(prefix, stem)


def track(ctx: Context, run_dir: Path, metrics: pd.DataFrame, summary: dict) -> None:
    """Log the report's run (module docstring)."""
    cfg = ctx.cfg
    with tracking.active().run("sweep and report", "report", tags=["report", *cfg.conditioning]) as tracked:
        tracked.log_table("metrics", metrics)
        curves = metrics[(metrics["prompt_kind"] == POOLED) & (metrics["mode"] != REAL)
                         & (metrics["train_seed"].astype(str) == POOLED)].copy()
        curves["line"] = [Line.of(row).label for row in curves[list(LINE_COLUMNS)].to_dict("records")]
        tracked.log_line_plots(curves, x="guidance", series="line",
                               metrics=[m for m in names(line_plot=True) if m in set(curves["metric"])])
        measured = set(curves["metric"])
        fidelity = next((m for m in FIDELITY if m in measured), None)  # the run's first, as the questions read
        diversity = next((m for m in DIVERSITY if m in measured), None)
        if fidelity and diversity:
            tracked.log_curves(frontier(curves, fidelity, diversity), x=diversity, series="line",
                               key=f"{fidelity}_vs_{diversity}", title=f"{fidelity} vs {diversity}")
        images = sorted(run_dir.glob("*.png"))
        for image in images:
            tracked.log_image(image.stem, image, caption=caption(image))
        setup = {f"setup/{key}": value if isinstance(value, (int, float, str)) else str(value)
                 for key, value in summary.get("setup", {}).items() if value is not None}
        tracked.summary({**primary_keys(summary), **metric_keys(metrics), **setup,
                         **{key: summary[key] for key in ("wall_time_total_s",) if key in summary}})
        read = list(ctx.artifacts.values())
        tracked.log_read(read)
        tracked.log_files("report", "report", [run_dir / name for name in REPORT_FILES] + images,
                          inputs=[a for a in read if a.stage in ("metrics", "sweep")])
