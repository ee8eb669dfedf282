"""Question 1: which mode has the best diversity–fidelity frontier across guidance scales?

Two readings of a frontier, both functions of cell means with intervals from the engine:
- Fidelity at matched diversity (the primary reading): the fidelity a curve reaches where its diversity has come
  down to a fixed fraction of the real images' diversity (`report.matched_diversity`), interpolated between the
  guidance scales that bracket it. It does not depend on how many scales a run swept, so runs with different
  guidance grids compare.
- Frontier area: the area the curve's guidance points dominate in the (diversity, fidelity) plane, from the
  origin (hypervolume; Zitzler & Thiele 1998). It rewards reaching high fidelity and high diversity at any
  scale and never decreases when a point moves up or right, but one excellent point dominates it and it grows
  with the number of scales: compare areas only between curves of one run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.report.contrasts import first_measured, matched_difference, matched_fidelity
from harness.metrics.catalogue import DIVERSITY, FIDELITY
from harness.line import Line, REAL_LINE
from harness.metrics.estimate import Reading, Estimate, Sweep
from harness.report.markdown import CANNOT_TELL, Section, as_json, fmt_est, name, table, verdict

TITLE = "Q1. Which mode has the best diversity–fidelity frontier?"


@dataclass(frozen=True)
class FrontierPoint:
    guidance: float
    diversity: Estimate
    fidelity: Estimate


def frontier_points(sweep: Sweep, curve: Line, diversity: str, fidelity: str) -> list[FrontierPoint]:
    """The curve's (diversity, fidelity) cells at each guidance scale where it has both."""
    return [FrontierPoint(g, sweep.value(sweep.cell(curve, g, diversity)), sweep.value(sweep.cell(curve, g, fidelity)))
            for g in sweep.guidances(curve, diversity, fidelity)]


def hypervolume(diversity: np.ndarray, fidelity: np.ndarray) -> float:
    """Area of the union of rectangles [0, d_i] x [0, f_i] (negative coordinates count as 0)."""
    d, f = np.clip(np.asarray(diversity, float), 0, None), np.clip(np.asarray(fidelity, float), 0, None)
    order = np.argsort(-d)
    d, f = d[order], f[order]
    # Sweeping from the most diverse point leftwards, each strip of width d_i - d_{i+1} is as tall as the best
    # fidelity among points at least that diverse.
    widths = d - np.append(d[1:], 0.0)
    return float(np.sum(widths * np.maximum.accumulate(f)))


def _frontier_cells(sweep: Sweep, curve: Line, diversity: str, fidelity: str) -> list[Reading]:
    if curve == REAL_LINE:
        return [sweep.ceiling_cell(diversity), sweep.ceiling_cell(fidelity)]
    scales = sweep.guidances(curve, diversity, fidelity)
    return [sweep.cell(curve, g, diversity) for g in scales] + [sweep.cell(curve, g, fidelity) for g in scales]


def _area_of(x: np.ndarray) -> float:
    half = len(x) // 2
    return hypervolume(x[:half], x[half:])


def frontier_area(sweep: Sweep, curve: Line, diversity: str, fidelity: str) -> Estimate | None:
    """The hypervolume of the curve's guidance points; the real ceiling is one point."""
    cells = _frontier_cells(sweep, curve, diversity, fidelity)
    return sweep.estimate(cells, _area_of) if cells else None


def section(sweep: Sweep, matched: float, reference: Line | None = None) -> Section:
    """Per fidelity measure: each curve's fidelity at matched diversity and frontier area, and every curve
    against `reference` (exploratory: the primary contrasts are in Key findings)."""
    diversity = first_measured(sweep, DIVERSITY)
    pairs = [f for f in FIDELITY if diversity and sweep.curves(diversity, f)]
    if not pairs:
        return Section.absent(TITLE, "the run has no curve with both a fidelity and a diversity measure")
    section = Section(TITLE, [
        f"Fidelity at matched diversity: the fidelity where the curve's {name(diversity)} has come down to "
        f"{matched:.0%} of the real images' (interpolated between the guidance scales that bracket it; n/a when "
        "the curve never gets there). Frontier area: the area the curve's guidance points dominate from the "
        "origin (larger is better; only comparable within one run). Differences against the reference line are "
        "exploratory: the question's primary contrasts, Holm-adjusted, are in Key findings.", ""],
        {"measured": True, "diversity": diversity, "matched_fraction": matched, "by_fidelity": {}})
    for fidelity in pairs:
        curves = sweep.curves(diversity, fidelity)
        base = reference if reference in curves else curves[0]
        matched_at = {c: matched_fidelity(sweep, c, diversity, fidelity, matched) for c in curves}
        areas = {c: frontier_area(sweep, c, diversity, fidelity) for c in curves}
        rows = [[c.label, fmt_est(matched_at[c]), fmt_est(areas[c]),
                 ", ".join(f"{g:g}" for g in sweep.guidances(c, diversity, fidelity))] for c in curves]
        real = frontier_area(sweep, REAL_LINE, diversity, fidelity)
        if real is not None:
            rows.append(["real images (ceiling)", fmt_est(sweep.value(sweep.ceiling_cell(fidelity))), fmt_est(real),
                         "-"])
        versus = {c: matched_difference(sweep, c, base, diversity, fidelity, matched) for c in curves if c != base}
        sentences = [verdict(f"- {c.label} − {base.label}, {name(fidelity)} at matched diversity", d,
                             f"{c.label} is more faithful at equal diversity",
                             f"{base.label} is more faithful at equal diversity", CANNOT_TELL)
                     for c, d in versus.items()]
        section.lines += [f"### {name(fidelity)} against {name(diversity)}", "",
                          *table(["curve", f"{name(fidelity)} at matched diversity", "frontier area",
                                  "guidance scales"], rows),
                          f"Against {base.label} (exploratory):", "", *sentences, ""]
        section.answer["by_fidelity"][fidelity] = {
            "matched": {c.label: as_json(e) for c, e in matched_at.items()},
            "areas": {c.label: as_json(e) for c, e in areas.items()}, "real_area": as_json(real),
            "reference": base.label, "minus_reference": {c.label: as_json(d) for c, d in versus.items()}}
    return section
