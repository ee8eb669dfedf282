"""Comparisons the questions share: two curves at each guidance scale, diversity drops, fractions of the real
ceiling, fidelity at matched diversity. Each is a function of cell means handed to the estimation engine, so
its interval is paired over prompts and seeds (harness/metrics/estimate.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from harness.metrics.catalogue import lower_is_better
from harness.line import Line
from harness.sampling.arms.base import FIXED, PER_SAMPLE
from harness.metrics.estimate import Reading, Estimate, Sweep


def first_measured(sweep: Sweep, metrics: Sequence[str]) -> str | None:
    """The first of `metrics` the run measured: the primary diversity measure is free_entropy when present."""
    return next((m for m in metrics if sweep.has(m)), None)


def better_sign(metric: str) -> int:
    """+1 when higher values of `metric` are better, -1 for distances such as FID."""
    return -1 if lower_is_better(metric) else 1


def difference(sweep: Sweep, a: Reading, b: Reading) -> Estimate | None:
    """a - b, paired over prompts and seeds."""
    return sweep.contrast([a, b], [1.0, -1.0])


@dataclass(frozen=True)
class Contrast:
    """Two curves at one guidance scale: their values and a - b."""

    guidance: float
    a: Estimate
    b: Estimate
    difference: Estimate


@dataclass(frozen=True)
class Comparison:
    a: Line
    b: Line
    metric: str
    points: list[Contrast]

    def verdicts(self) -> tuple[list[float], list[float], list[float]]:
        """Guidance scales where a is better by more than the interval, where b is, and where the data cannot
        tell (the interval of a - b contains 0); "better" follows the metric's direction."""
        above = [p.guidance for p in self.points if p.difference.low > 0]
        below = [p.guidance for p in self.points if p.difference.high < 0]
        neither = [p.guidance for p in self.points if not p.difference.excludes(0.0)]
        return (above, below, neither) if better_sign(self.metric) > 0 else (below, above, neither)


def compare(sweep: Sweep, a: Line, b: Line, metric: str) -> Comparison:
    """Where does curve a beat curve b on `metric`: at each shared guidance scale, a - b with its interval."""
    points = []
    for g in sorted(set(sweep.guidances(a, metric)) & set(sweep.guidances(b, metric))):
        ca, cb = sweep.cell(a, g, metric), sweep.cell(b, g, metric)
        points.append(Contrast(g, sweep.value(ca), sweep.value(cb), difference(sweep, ca, cb)))
    return Comparison(a, b, metric, points)


def fraction_of_ceiling(sweep: Sweep, cell: Reading) -> Estimate | None:
    """cell / real ceiling of the same metric: 1 means as diverse (or faithful) as real images of the prompts."""
    return sweep.estimate([cell, sweep.ceiling_cell(cell.metric)], lambda x: float(x[0] / x[1]))


@dataclass(frozen=True)
class DiversityDrop:
    """Diversity at the lowest and highest guidance scale, the drop between them, and each as a fraction of the
    real ceiling (None when the run has no ceiling for the metric)."""

    curve: Line
    metric: str
    low_guidance: float
    high_guidance: float
    start: Estimate
    end: Estimate
    drop: Estimate
    start_of_ceiling: Estimate | None
    end_of_ceiling: Estimate | None


def diversity_drop(sweep: Sweep, curve: Line, metric: str) -> DiversityDrop | None:
    scales = sweep.guidances(curve, metric)
    if len(scales) < 2:
        return None
    start, end = sweep.cell(curve, scales[0], metric), sweep.cell(curve, scales[-1], metric)
    return DiversityDrop(curve, metric, scales[0], scales[-1], sweep.value(start), sweep.value(end),
                         difference(sweep, start, end), fraction_of_ceiling(sweep, start),
                         fraction_of_ceiling(sweep, end))


def drop_difference(sweep: Sweep, a: Line, b: Line, metric: str) -> Estimate | None:
    """drop(a) - drop(b) between the lowest and highest guidance scale both share: > 0 means a loses more."""
    scales = sorted(set(sweep.guidances(a, metric)) & set(sweep.guidances(b, metric)))
    if len(scales) < 2:
        return None
    cells = [sweep.cell(c, g, metric) for c in (a, b) for g in (scales[0], scales[-1])]
    return sweep.contrast(cells, [1.0, -1.0, -1.0, 1.0])


def draw_pairs(sweep: Sweep, metric: str) -> list[tuple[Line, Line]]:
    """(fixed, per_sample) curves of every mode measured with both prior-draw policies."""
    curves = set(sweep.curves(metric))
    return [(c, replace(c, arm=PER_SAMPLE)) for c in sweep.order(curves)
            if c.arm == FIXED and replace(c, arm=PER_SAMPLE) in curves]


# ---------------------------------------------------------------- fidelity at matched diversity


def interpolate_at(diversity: np.ndarray, fidelity: np.ndarray, target: float) -> float:
    """Fidelity where the curve (points in guidance order) first comes down to `target` diversity, linearly
    interpolated between the two guidance points that bracket it; NaN when no segment reaches it. (The roles
    swap for diversity at matched fidelity: the first argument is then the fidelity, the second the diversity.)"""
    for i in range(len(diversity) - 1):
        d0, d1 = diversity[i], diversity[i + 1]
        if min(d0, d1) <= target <= max(d0, d1):
            if d0 == d1:
                return float(max(fidelity[i], fidelity[i + 1]))
            t = (target - d0) / (d1 - d0)
            return float(fidelity[i] + t * (fidelity[i + 1] - fidelity[i]))
    return float("nan")


def matched_cells(sweep: Sweep, curve: Line, diversity: str, fidelity: str) -> list[Reading]:
    """The real ceiling's diversity, then the curve's diversity cells and fidelity cells over its scales."""
    scales = sweep.guidances(curve, diversity, fidelity)
    return ([sweep.ceiling_cell(diversity)] + [sweep.cell(curve, g, diversity) for g in scales]
            + [sweep.cell(curve, g, fidelity) for g in scales])


def _matched(x: np.ndarray, fraction: float) -> float:
    n = (len(x) - 1) // 2
    return interpolate_at(x[1:1 + n], x[1 + n:], fraction * x[0])


def matched_fidelity(sweep: Sweep, curve: Line, diversity: str, fidelity: str, fraction: float) -> Estimate | None:
    """Fidelity at the guidance where the curve's diversity equals `fraction` of the real ceiling's, interpolated
    between swept scales. It does not depend on which scales a run swept (only on their bracketing the
    target), so it compares runs with different guidance grids; NaN when the curve never reaches the target."""
    if sweep.value(sweep.ceiling_cell(diversity)) is None or len(sweep.guidances(curve, diversity, fidelity)) < 2:
        return None
    return sweep.estimate(matched_cells(sweep, curve, diversity, fidelity), lambda x: _matched(x, fraction))


def matched_difference(sweep: Sweep, a: Line, b: Line, diversity: str, fidelity: str,
                       fraction: float) -> Estimate | None:
    """matched_fidelity(a) - matched_fidelity(b), paired (the shared ceiling counts once)."""
    if any(matched_fidelity(sweep, c, diversity, fidelity, fraction) is None for c in (a, b)):
        return None
    cells_a, cells_b = (matched_cells(sweep, c, diversity, fidelity) for c in (a, b))
    n = len(cells_a)
    return sweep.estimate(cells_a + cells_b, lambda x: _matched(x[:n], fraction) - _matched(x[n:], fraction))


# ---------------------------------------------------------------- diversity at matched fidelity


def shared_fidelity(fidelity_a: np.ndarray, fidelity_b: np.ndarray) -> float:
    """The middle of the fidelity range two curves both span over their guidance scales; NaN when they share
    none. Curves from different decoders rarely reach one fixed level, but where their ranges overlap both
    can be read at its middle."""
    low, high = max(fidelity_a.min(), fidelity_b.min()), min(fidelity_a.max(), fidelity_b.max())
    return float((low + high) / 2) if low <= high else float("nan")


def diversity_at_matched_fidelity(sweep: Sweep, a: Line, b: Line, diversity: str, fidelity: str,
                                  a_base: Line | None = None, b_base: Line | None = None) -> Estimate | None:
    """diversity(a) − diversity(b) where each curve first reaches the fidelity both share (`shared_fidelity`),
    interpolated between the guidance scales that bracket it: > 0 when a keeps more diversity at equal
    fidelity. With bases, gains are compared: (a − a_base) − (b − b_base), each pair at its own shared
    fidelity. NaN when a pair shares no fidelity; None when a curve has fewer than two scales."""
    pairs = [(a, b)] if a_base is None or b_base is None else [(a, a_base), (b, b_base)]
    signs = [1.0] if len(pairs) == 1 else [1.0, -1.0]
    curves = [c for pair in pairs for c in pair]
    scales = [sweep.guidances(c, diversity, fidelity) for c in curves]
    if any(len(s) < 2 for s in scales):
        return None
    cells = [sweep.cell(c, g, m) for c, s in zip(curves, scales) for m in (fidelity, diversity) for g in s]
    bounds = np.cumsum([0] + [2 * len(s) for s in scales])

    def curve_values(x: np.ndarray, i: int) -> tuple[np.ndarray, np.ndarray]:
        values = x[bounds[i]:bounds[i + 1]]
        return values[:len(values) // 2], values[len(values) // 2:]  # fidelity, diversity over the scales

    def gap(x: np.ndarray) -> float:
        total = 0.0
        for k, sign in enumerate(signs):
            (fa, da), (fb, db) = curve_values(x, 2 * k), curve_values(x, 2 * k + 1)
            target = shared_fidelity(fa, fb)
            total += sign * (interpolate_at(fa, da, target) - interpolate_at(fb, db, target))
        return total

    return sweep.estimate(cells, gap)
