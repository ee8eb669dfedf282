"""The report stage: analysis of the sweep's metrics table (`frontier`) and its rendering (`render`); `join` makes
one report of several jobs' run folders (CLIP variants), `multirun` does so after a Hydra multirun.

`join` is not imported here: `python -m harness.report.join` runs it as a script."""

from harness.report.frontier import (
    Comparison,
    Curve,
    Estimate,
    Sweep,
    area_difference,
    attention_split,
    compare,
    diversity_drop,
    drop_gap,
    frontier,
    frontier_area,
    group_contrast,
    hypervolume,
)
from harness.report.render import write_report

__all__ = [
    "Comparison",
    "Curve",
    "Estimate",
    "Sweep",
    "area_difference",
    "attention_split",
    "compare",
    "diversity_drop",
    "drop_gap",
    "frontier",
    "frontier_area",
    "group_contrast",
    "hypervolume",
    "write_report",
]
