"""Formatting shared by the report's sections: numbers with intervals, verdict sentences, markdown tables.

A sentence that compares two things says which is higher only when the interval of their difference excludes
0, and otherwise that the data cannot tell, with the smallest difference the run could have detected.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.metrics.catalogue import label
from harness.metrics.intervals import PROMPTS_ONLY
from harness.line import Line
from harness.metrics.estimate import Estimate, Sweep

NOT_MEASURED = "Not measured in this run"
CANNOT_TELL = "the data cannot tell"


def fmt(x: float | None, like: float | None = None) -> str:
    """Three decimals below 10, one below 1000, none above: enough for accuracies, entropies and FIDs. `like`: the
    magnitude that chooses the decimals (an interval's bounds take its estimate's largest, so one number reads in
    one format)."""
    if x is None or math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    size = abs(x) if like is None else like
    digits = 3 if size < 10 else 1 if size < 1000 else 0
    text = f"{x:.{digits}f}"
    return text.lstrip("-") if float(text) == 0 else text  # no "-0.000"


def fmt_est(e: Estimate | None) -> str:
    """`value [low, high]` in one format, marked † when it rests on one training seed without a borrowed seed
    variance (prompt variation only)."""
    if e is None or math.isnan(e.value):
        return "n/a"
    mark = "†" if e.seed_term == PROMPTS_ONLY and e.prompts else ""
    size = max(abs(v) for v in (e.value, e.low, e.high) if math.isfinite(v))
    return f"{fmt(e.value, size)} [{fmt(e.low, size)}, {fmt(e.high, size)}]{mark}"


def fmt_scales(scales: Iterable[float]) -> str:
    return "g = " + ", ".join(f"{g:g}" for g in scales)


def name(metric: str) -> str:
    return label(metric)


def verdict(statement: str, diff: Estimate | None, above: str, below: str, neither: str) -> str:
    """`statement = diff: <outcome>`: above/below only when the interval excludes 0, else `neither` with the
    minimal detectable difference."""
    if diff is None or math.isnan(diff.value):
        return f"{statement}: n/a."
    if diff.low > 0 or diff.high < 0:
        return f"{statement} = {fmt_est(diff)}: {above if diff.low > 0 else below}."
    return f"{statement} = {fmt_est(diff)}: {neither} (detectable: ±{fmt(diff.detectable())})."


def split_by_sign(points: Sequence[tuple[float, Estimate]]) -> tuple[list[float], list[float], list[float]]:
    """Guidance scales whose interval lies above 0, below 0, and those where it contains 0."""
    above = [g for g, e in points if e.low > 0]
    below = [g for g, e in points if e.high < 0]
    return above, below, [g for g, e in points if not e.excludes(0.0)]


def where_clauses(above: str, up: list[float], below: str, down: list[float], neither: list[float]) -> str:
    """One clause per outcome that holds somewhere, listing its guidance scales."""
    clauses = [f"{above} at {fmt_scales(up)}"] if up else []
    clauses += [f"{below} at {fmt_scales(down)}"] if down else []
    clauses += [f"{CANNOT_TELL} at {fmt_scales(neither)}"] if neither else []
    return "; ".join(clauses) + "." if clauses else "no shared guidance scale."


def by_sign(points: Sequence[tuple[float, Estimate]], above: str, below: str) -> str:
    """Where the interval lies above 0 (`above`), below 0 (`below`), or contains 0."""
    up, down, neither = split_by_sign(points)
    return where_clauses(above, up, below, down, neither)


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows] + [""]


def as_json(e: Estimate | None) -> dict | None:
    if e is None:
        return None
    finite = (lambda x: x if math.isfinite(x) else None)
    return {"value": finite(e.value), "low": finite(e.low), "high": finite(e.high), "se": finite(e.se),
            "prompts": e.prompts, "seeds": e.seeds, "seed_term": e.seed_term}


def metric_table(sweep: Sweep, metric: str, curves: Sequence[Line]) -> list[str]:
    """Curves x guidance scales of one metric, then the real ceiling when measured."""
    scales = sorted({g for c in curves for g in sweep.guidances(c, metric)})
    rows = [[c.label] + [fmt_est(sweep.value(sweep.cell(c, g, metric))) for g in scales] for c in curves]
    lines = table(["curve"] + [f"g = {g:g}" for g in scales], rows)
    ceiling = sweep.value(sweep.ceiling_cell(metric))
    if ceiling is not None:
        lines += [f"Real images of the same prompts (ceiling): {fmt_est(ceiling)}.", ""]
    floor = sweep.value(sweep.floor_cell(metric))
    if floor is not None:
        lines += [f"Real images against an independent draw of them, at the same sizes (what a perfect model would "
                  f"score here; for a distance, its floor): {fmt_est(floor)}.", ""]
    return lines


@dataclass
class Section:
    title: str
    lines: list[str] = field(default_factory=list)
    answer: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def absent(cls, title: str, reason: str) -> Section:
        return cls(title, [f"{NOT_MEASURED}: {reason}.", ""], {"measured": False, "reason": reason})
