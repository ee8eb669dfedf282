"""One-off: convert run folders written before lines had their own columns (commit 836c1f2 and earlier).

    python tools/migrate_line_columns.py RUN_DIR...

Such a folder folds a line into its `mode` string (`combined-without_clip`, `combined@text3`, a `clip` column of
a joint report) and older ones call the arm `prior_draw`; their summary.json may lack the run's arms and mode
tags, and their config.yaml names lines as `mode/arm`. This rewrites, in place:
- per_prompt.csv (or .csv.gz) and metrics.csv with the five line columns of `harness.line`;
- summary.json with `arms` (the prior-draw policies it sampled, both baselines) and `mode_tags` (the shipped
  YAMLs' tags of its modes) where missing;
- config.yaml's `report.primary` lines as labels (`unclip (per_sample)`).
Then `python -m harness.report.rerender RUN_DIR` writes its report with the current code.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from harness.config import CONF_DIR, ConditioningConfig
from harness.line import COLUMNS, NONE, Line

STANDARD = "standard"


def old_line(mode: str, arm: str, clip: str = NONE) -> Line:
    base, _, variant = mode.partition("@")
    text = re.fullmatch(r"text([-+.\deE]+)", variant)
    mode, _, ablation = base.partition("-without_")
    clip_variant = NONE if clip in (NONE, STANDARD, "") else clip
    if variant and not text:  # a CLIP variant folded into the mode name
        clip_variant = variant
    return Line(mode, arm or NONE, ablation or NONE, float(text.group(1)) if text else None, clip_variant)


def migrate_table(table: pd.DataFrame) -> pd.DataFrame:
    if "ablation" in table.columns:
        return table
    table = table.rename(columns={"prior_draw": "arm"})
    clip = table["clip"].fillna(NONE).astype(str) if "clip" in table else pd.Series(NONE, index=table.index)
    keys = pd.DataFrame({"mode": table["mode"].astype(str), "arm": table["arm"].fillna(NONE).astype(str),
                         "clip": clip})
    unique = keys.drop_duplicates()
    lines = {tuple(k): old_line(*k).columns() for k in unique.itertuples(index=False)}
    converted = pd.DataFrame([lines[tuple(k)] for k in keys.itertuples(index=False)], index=table.index)
    rest = [c for c in table.columns if c not in ("mode", "arm", "clip")]
    return pd.concat([converted[list(COLUMNS)], table[rest]], axis=1)


def migrate_summary(summary: dict, per_prompt: pd.DataFrame) -> dict:
    if "mode_tags" not in summary:
        shipped = {}
        for path in sorted((CONF_DIR / "conditioning").glob("*.yaml")):
            for mode, node in (OmegaConf.load(path) or {}).items():
                mode_cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ConditioningConfig), node))
                shipped[str(mode)] = mode_cfg.all_tags
        modes = [m for m in dict.fromkeys(per_prompt["mode"]) if m != "real"]
        summary["mode_tags"] = {m: shipped[m] for m in modes if m in shipped}
    if "arms" not in summary:
        arms = per_prompt[["mode", "arm"]].drop_duplicates()
        summary["arms"] = {arm: {"module": arm, "baseline": True,
                                 "modes": sorted(arms.loc[arms["arm"] == arm, "mode"])}
                           for arm in sorted(set(arms["arm"]) - {NONE})}
    return summary


def migrate_config(path: Path) -> None:
    config = OmegaConf.load(path)
    primary = OmegaConf.select(config, "report.primary")
    if not primary:
        return
    for contrast in primary:
        for side in ("a", "b", "a_base", "b_base"):
            text = contrast.get(side)
            if text and any(old in text for old in ("/", "-without_", "@")):
                mode, _, arm = text.partition("/")
                contrast[side] = old_line(mode, arm or NONE).label
    OmegaConf.save(config, path)


def migrate(run_dir: Path) -> None:
    per_prompt_path = next(p for p in (run_dir / "per_prompt.csv", run_dir / "per_prompt.csv.gz") if p.is_file())
    per_prompt = migrate_table(pd.read_csv(per_prompt_path, dtype={"train_seed": str}, low_memory=False))
    per_prompt.to_csv(per_prompt_path, index=False)
    metrics_path = run_dir / "metrics.csv"
    if metrics_path.is_file():
        migrate_table(pd.read_csv(metrics_path, dtype={"train_seed": str}, low_memory=False)).to_csv(
            metrics_path, index=False)
    summary_path = run_dir / "summary.json"
    summary = migrate_summary(json.loads(summary_path.read_text()), per_prompt)
    summary_path.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    if (run_dir / "config.yaml").is_file():
        migrate_config(run_dir / "config.yaml")
    print(f"{run_dir}: {len(per_prompt)} rows, lines {sorted({Line.of(r).label for r in per_prompt[list(COLUMNS)].drop_duplicates().to_dict('records')})}")


if __name__ == "__main__":
    for folder in sys.argv[1:]:
        migrate(Path(folder))
