"""The numbers behind each research question (docs/questions.md), computed from the sweep's metrics table.

Inputs. The long-form metrics table (columns relied on: `mode, guidance, prior_draw, train_seed, prompt_kind,
metric, value, ci_low, ci_high`; others are ignored, except an optional `clip` column naming the CLIP variant)
and, optionally, per-prompt values (`mode, guidance, prior_draw, train_seed, prompt_kind, prompt_id, metric,
value`). A *cell* is one (mode, prior draw, guidance, metric, prompt kind); a *curve* is one line of the
figure: a mode with one prior-draw policy, its cells over guidance scales.

Intervals. Every derived number (a difference, a drop, a ratio, a frontier area) is a function of cell means:
- when every cell involved has per-prompt values, its interval is the percentile bootstrap over prompts of
  `harness.metrics.bootstrap`, drawing the same prompts for every cell, so a comparison is paired and prompt
  difficulty shared by both sides cancels;
- otherwise it is propagated from the cells' CI columns by interval arithmetic: the function is monotone in
  each cell, so its range over the box of cell intervals is reached at two corners. This is conservative, and
  for a difference of two cells it excludes 0 exactly when the two intervals do not overlap.
A derived interval that contains 0 means the data cannot tell the two sides apart.

Training seeds. Rows with `train_seed == "all"` are used as the sweep wrote them. Cells without such a row are
pooled here: value = mean over seeds, interval = envelope of the seeds' intervals (it covers both prompt and
seed variability, so it errs wide); per-prompt values are averaged over seeds before prompts are resampled.

Frontier area (question 1). A curve's frontier is its set of (diversity, fidelity) points over guidance scales;
its area is the hypervolume those points dominate with respect to the origin (Zitzler & Thiele 1998,
"Multiobjective optimization using evolutionary algorithms: a comparative case study"): the area of the union of
the rectangles [0, diversity_g] x [0, fidelity_g]. It is chosen because it
- rewards reaching high fidelity and high diversity at any guidance scale, and only the Pareto-optimal scales
  count, so a bad scale in the sweep does not penalise a mode;
- never decreases when a point moves up or right, so a curve that dominates another has the larger area
  (and interval arithmetic on it is valid);
- needs no diversity range shared by all modes (a collapsed mode and a diverse one may not overlap at all,
  which breaks the "area under fidelity over the common diversity range" alternative);
- on 0..1 measures (attribute accuracy, free-attribute entropy) is the share of the perfect unit square.
Each curve is scored on its own guidance grid; diversity above the real ceiling counts like any diversity, so
read the area next to the ceiling's own area.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import reduce

import numpy as np
import pandas as pd

from harness.metrics.bootstrap import bootstrap_statistic

REAL = "real"  # pseudo-mode: real reference images of the same prompts, the ceiling
NO_DRAW = "-"  # prior_draw of modes that use no prior
POOLED = "all"  # train_seed of rows that pool seeds; prompt_kind of rows over every prompt

# Higher is better for every fidelity measure listed here (FID and KID are lower-is-better distances and are
# compared, never used as a frontier axis).
FIDELITY = ("attribute_accuracy", "binding_accuracy", "clip_score", "precision")
DIVERSITY = ("free_entropy", "pairwise_distance", "vendi", "recall", "coverage")
LOWER_IS_BETTER = frozenset({"fid", "kid"})
ATTENTION_CLIP, ATTENTION_TEXT = "attention_clip", "attention_text"

# Question 5: does a fixed-length vector lose binding that a token sequence keeps? unclip_oracle is left out:
# it sees the true image vector, a reconstruction ceiling rather than a text-to-image mode.
VECTOR_ONLY = ("clip_text", "clip_text_k1", "unclip")
SEQUENCE = ("glide", "glide_seq", "combined", "clip_text_seq")

# Display order: the modes of docs/design.md's table, ablations beside their parent; unknown modes follow by name.
MODE_ORDER = ("glide", "glide_seq", "clip_text", "clip_text_k1", "clip_text_seq", "unclip", "combined",
              "unclip_oracle")
DRAW_ORDER = (NO_DRAW, "per_sample", "fixed")
# When a metric has no row over all prompts, the prompts it is defined on (free attributes, two objects).
KIND_ORDER = (POOLED, "free", "binding", "full")

_KEYS = ["mode", "prior_draw", "guidance", "prompt_kind", "metric"]


# ---------------------------------------------------------------- value types


@dataclass(frozen=True)
class Curve:
    """One line of the figure: a mode and, for modes with a prior, its draw policy."""

    mode: str
    prior_draw: str = NO_DRAW

    @property
    def label(self) -> str:
        return self.mode if self.prior_draw == NO_DRAW else f"{self.mode} ({self.prior_draw})"

    @property
    def base_mode(self) -> str:
        """The mode without its CLIP-variant suffix: `clip_text@hardneg` -> `clip_text`."""
        return self.mode.split("@", 1)[0]

    @property
    def hard_negative(self) -> bool:
        return "hard" in self.mode.partition("@")[2].lower()

    def sort_key(self) -> tuple:
        base = self.base_mode
        rank = MODE_ORDER.index(base) if base in MODE_ORDER else len(MODE_ORDER)
        draw = DRAW_ORDER.index(self.prior_draw) if self.prior_draw in DRAW_ORDER else len(DRAW_ORDER)
        return rank, base, self.mode, draw, self.prior_draw


REAL_CURVE = Curve(REAL)


@dataclass(frozen=True)
class Cell:
    curve: Curve
    guidance: float  # NaN for the real ceiling
    metric: str
    prompt_kind: str


@dataclass(frozen=True)
class Estimate:
    """A number and its interval; `paired` says it came from resampling per-prompt values."""

    value: float
    low: float
    high: float
    paired: bool = False

    def excludes(self, x: float = 0.0) -> bool:
        return self.low > x or self.high < x


# ---------------------------------------------------------------- loading and seed pooling


def _guidance_key(g: float) -> float | None:
    return None if g is None or math.isnan(g) else round(float(g), 6)


def _normalise(table: pd.DataFrame) -> pd.DataFrame:
    """Uniform dtypes, the real ceiling outside the guidance axis, and a CLIP variant column folded into the mode
    name (`clip_text` with `clip=hardneg` becomes `clip_text@hardneg`) so that the variant is a curve of its own."""
    t = table.copy()
    t["mode"] = t["mode"].astype(str)
    if "clip" in t.columns:
        variant = t["clip"].fillna("").astype(str)
        fold = variant.str.contains("hard", case=False) & ~t["mode"].str.contains("@")
        t.loc[fold, "mode"] = t.loc[fold, "mode"] + "@" + variant[fold]
    t["prior_draw"] = t["prior_draw"].fillna(NO_DRAW).astype(str)
    t["train_seed"] = t["train_seed"].astype(str)
    t["prompt_kind"] = t["prompt_kind"].astype(str)
    t["guidance"] = pd.to_numeric(t["guidance"], errors="coerce").round(6)
    real = t["mode"] == REAL
    t.loc[real, "guidance"] = np.nan
    t.loc[real, "prior_draw"] = NO_DRAW
    return t


def _pool(table: pd.DataFrame, keys: list[str], aggregate: dict[str, str]) -> pd.DataFrame:
    given = table[table["train_seed"] == POOLED]
    per_seed = table[table["train_seed"] != POOLED]
    pooled = per_seed.groupby(keys, dropna=False, as_index=False).agg(aggregate)
    # A row the sweep pooled itself wins over our pooling of the same cell (duplicated() treats NaN as equal).
    both = pd.concat([given[keys + list(aggregate)], pooled], ignore_index=True)
    return both[~both.duplicated(keys, keep="first")].reset_index(drop=True)


def pool_metrics(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: the seed mean, with the envelope of the seeds' intervals (see the module docstring)."""
    return _pool(_normalise(metrics), _KEYS, {"value": "mean", "ci_low": "min", "ci_high": "max"})


def pool_per_prompt(per_prompt: pd.DataFrame) -> pd.DataFrame:
    """One row per cell and prompt: the mean over training seeds."""
    return _pool(_normalise(per_prompt), _KEYS + ["prompt_id"], {"value": "mean"})


# ---------------------------------------------------------------- the table


def _preferred_kind(kinds: set[str]) -> str:
    return ([k for k in KIND_ORDER if k in kinds] + sorted(kinds - set(KIND_ORDER)))[0]


class Sweep:
    """The pooled metrics (and per-prompt values, when given) with lookups by cell and the interval engine."""

    def __init__(self, metrics: pd.DataFrame, per_prompt: pd.DataFrame | None = None, resamples: int = 1000,
                 confidence: float = 0.95, seed: int = 0) -> None:
        self.metrics = pool_metrics(metrics)
        self.per_prompt = None if per_prompt is None or per_prompt.empty else pool_per_prompt(per_prompt)
        self.resamples, self.confidence, self.seed = resamples, confidence, seed
        self._kinds = {metric: _preferred_kind(set(rows["prompt_kind"]))
                       for metric, rows in self.metrics.groupby("metric")}
        self._cells = {
            (r.mode, r.prior_draw, _guidance_key(r.guidance), r.metric, r.prompt_kind):
                Estimate(float(r.value), float(r.ci_low), float(r.ci_high))
            for r in self.metrics.itertuples(index=False)
        }
        self._prompts: dict[tuple, pd.DataFrame] = {}
        if self.per_prompt is not None:
            for (mode, draw, g, metric), rows in self.per_prompt.groupby(
                    ["mode", "prior_draw", "guidance", "metric"], dropna=False):
                # Prompt ids may restart at 0 in each prompt kind, so the kind is part of a prompt's identity.
                ids = rows["prompt_kind"].astype(str) + ":" + rows["prompt_id"].astype(str)
                self._prompts[(mode, draw, _guidance_key(g), metric)] = pd.DataFrame(
                    {"kind": rows["prompt_kind"].to_numpy(), "value": rows["value"].to_numpy(float)},
                    index=ids.to_numpy())

    # -- what was measured

    def has(self, metric: str) -> bool:
        return bool((self.metrics["metric"] == metric).any())

    def metrics_named(self, prefix: str) -> list[str]:
        return sorted(m for m in self.metrics["metric"].unique() if m.startswith(prefix))

    def kind(self, metric: str) -> str | None:
        """The prompt kind a metric is read on: every prompt when measured so, else the kind it is defined on."""
        return self._kinds.get(metric)

    def curves(self, *metrics: str) -> list[Curve]:
        """Curves (never the real ceiling) with a guidance scale where every given metric exists (any metric when
        none is given)."""
        return sorted({curve for curve, _ in self._points(metrics)} - {REAL_CURVE}, key=Curve.sort_key)

    def guidances(self, curve: Curve, *metrics: str) -> list[float]:
        """Guidance scales where the curve has every given metric (any metric when none is given), ascending."""
        return sorted(g for c, g in self._points(metrics) if c == curve and g is not None)

    def _points(self, metrics: Sequence[str]) -> set[tuple[Curve, float | None]]:
        # (curve, guidance) pairs where all `metrics` exist, each read on its own prompt kind.
        def where(metric: str | None) -> set[tuple[Curve, float | None]]:
            return {(Curve(m, d), g) for (m, d, g, met, k) in self._cells
                    if metric is None or (met == metric and k == self.kind(metric))}

        return reduce(set.intersection, [where(m) for m in metrics]) if metrics else where(None)

    def cell(self, curve: Curve, guidance: float, metric: str) -> Cell:
        return Cell(curve, guidance, metric, self.kind(metric) or "")

    def ceiling_cell(self, metric: str) -> Cell:
        return self.cell(REAL_CURVE, math.nan, metric)

    # -- numbers

    def value(self, cell: Cell) -> Estimate | None:
        """The cell's own row: value and interval as in the table."""
        return self._cells.get(self._key(cell) + (cell.prompt_kind,))

    def estimate(self, cells: Sequence[Cell], fn: Callable[[np.ndarray], float],
                 increasing: Sequence[bool]) -> Estimate | None:
        """fn(cell means) with its interval; `increasing[i]` says whether fn rises with cell i (it must be
        monotone in every cell, which the interval-arithmetic fallback relies on). None when a cell is missing."""
        rows = [self.value(c) for c in cells]
        if any(r is None for r in rows):
            return None
        samples = [self._prompt_values(c) for c in cells]
        if all(s is not None for s in samples):
            return self._bootstrap(samples, fn)
        up = np.asarray(increasing, dtype=bool)
        value, low, high = (np.array([getattr(r, f) for r in rows]) for f in ("value", "low", "high"))
        with np.errstate(divide="ignore", invalid="ignore"):
            return Estimate(float(fn(value)), float(fn(np.where(up, low, high))), float(fn(np.where(up, high, low))))

    def contrast(self, cells: Sequence[Cell], weights: Sequence[float]) -> Estimate | None:
        """A weighted sum of cell means (a difference, a difference of drops, a group mean...) with its interval."""
        w = np.asarray(weights, dtype=float)
        return self.estimate(cells, lambda x: float(x @ w), w > 0)

    def _key(self, cell: Cell) -> tuple:
        return cell.curve.mode, cell.curve.prior_draw, _guidance_key(cell.guidance), cell.metric

    def _prompt_values(self, cell: Cell) -> pd.Series | None:
        rows = self._prompts.get(self._key(cell))
        if rows is not None and cell.prompt_kind != POOLED:
            rows = rows[rows["kind"] == cell.prompt_kind]
        return None if rows is None or rows.empty else rows["value"]

    def _bootstrap(self, samples: list[pd.Series], fn: Callable[[np.ndarray], float]) -> Estimate:
        ids = reduce(lambda a, b: a.union(b), (s.index for s in samples))
        matrix = np.stack([s.reindex(ids).to_numpy(float) for s in samples])  # [cells, prompts], NaN = not scored
        present = ~np.isnan(matrix)
        # Sums and counts stacked so that one gather per draw gives both: a cell's mean is over the drawn prompts
        # it was scored on, duplicates counted as often as drawn.
        stacked = np.concatenate([np.where(present, matrix, 0.0), present.astype(float)])
        n = len(samples)

        def statistic(idx: np.ndarray) -> float:
            totals = stacked[:, idx].sum(axis=1)
            return fn(totals[:n] / totals[n:])

        with np.errstate(divide="ignore", invalid="ignore"):
            interval = bootstrap_statistic(np.arange(len(ids)), statistic, self.resamples, self.confidence,
                                           self.seed)
        return Estimate(float(interval.value), float(interval.low), float(interval.high), paired=True)


# ---------------------------------------------------------------- comparisons


def first_measured(sweep: Sweep, metrics: Sequence[str]) -> str | None:
    """The first of `metrics` the run measured: the primary diversity measure is free_entropy when present."""
    return next((m for m in metrics if sweep.has(m)), None)


def better_sign(metric: str) -> int:
    """+1 when higher values of `metric` are better, -1 for distances such as FID."""
    return -1 if metric in LOWER_IS_BETTER else 1


@dataclass(frozen=True)
class Contrast:
    """Two curves at one guidance scale: their values and a - b."""

    guidance: float
    a: Estimate
    b: Estimate
    difference: Estimate


@dataclass(frozen=True)
class Comparison:
    a: Curve
    b: Curve
    metric: str
    points: list[Contrast]

    def verdicts(self) -> tuple[list[float], list[float], list[float]]:
        """Guidance scales where a is better by more than the interval, where b is, and where the data cannot
        tell (the interval of a - b contains 0); "better" follows the metric's direction."""
        above, below, neither = split_by_sign([(p.guidance, p.difference) for p in self.points])
        return (above, below, neither) if better_sign(self.metric) > 0 else (below, above, neither)


def split_by_sign(points: Sequence[tuple[float, Estimate]]) -> tuple[list[float], list[float], list[float]]:
    """Guidance scales whose interval lies above 0, below 0, and those where it contains 0."""
    above = [g for g, e in points if e.low > 0]
    below = [g for g, e in points if e.high < 0]
    return above, below, [g for g, e in points if not e.excludes(0.0)]


def difference(sweep: Sweep, a: Cell, b: Cell) -> Estimate | None:
    """a - b, paired over prompts when per-prompt values exist."""
    return sweep.contrast([a, b], [1.0, -1.0])


def compare(sweep: Sweep, a: Curve, b: Curve, metric: str) -> Comparison:
    """Where does curve a beat curve b on `metric`: at each shared guidance scale, a - b with its interval.

    `Comparison.verdicts()` splits the scales by the paired-difference interval (without per-prompt values: by
    whether the two intervals overlap) into a better, b better, and cannot tell."""
    points = []
    for g in sorted(set(sweep.guidances(a, metric)) & set(sweep.guidances(b, metric))):
        ca, cb = sweep.cell(a, g, metric), sweep.cell(b, g, metric)
        points.append(Contrast(g, sweep.value(ca), sweep.value(cb), difference(sweep, ca, cb)))
    return Comparison(a, b, metric, points)


# ---------------------------------------------------------------- question 1: the frontier


@dataclass(frozen=True)
class FrontierPoint:
    guidance: float
    diversity: Estimate
    fidelity: Estimate


def hypervolume(diversity: np.ndarray, fidelity: np.ndarray) -> float:
    """Area of the union of rectangles [0, d_i] x [0, f_i] (negative coordinates count as 0)."""
    d, f = np.clip(np.asarray(diversity, float), 0, None), np.clip(np.asarray(fidelity, float), 0, None)
    order = np.argsort(-d)
    d, f = d[order], f[order]
    # Sweeping from the most diverse point leftwards, each strip of width d_i - d_{i+1} is as tall as the best
    # fidelity among points at least that diverse.
    widths = d - np.append(d[1:], 0.0)
    return float(np.sum(widths * np.maximum.accumulate(f)))


def frontier(sweep: Sweep, curve: Curve, diversity: str, fidelity: str) -> list[FrontierPoint]:
    return [FrontierPoint(g, sweep.value(sweep.cell(curve, g, diversity)), sweep.value(sweep.cell(curve, g, fidelity)))
            for g in sweep.guidances(curve, diversity, fidelity)]


def _frontier_cells(sweep: Sweep, curve: Curve, diversity: str, fidelity: str) -> list[Cell]:
    scales = sweep.guidances(curve, diversity, fidelity)
    return [sweep.cell(curve, g, diversity) for g in scales] + [sweep.cell(curve, g, fidelity) for g in scales]


def _area_of(x: np.ndarray) -> float:
    half = len(x) // 2
    return hypervolume(x[:half], x[half:])


def frontier_area(sweep: Sweep, curve: Curve, diversity: str, fidelity: str) -> Estimate | None:
    """The hypervolume of the curve's guidance points (module docstring); the real ceiling is one point."""
    if curve == REAL_CURVE:
        cells = [sweep.ceiling_cell(diversity), sweep.ceiling_cell(fidelity)]
    else:
        cells = _frontier_cells(sweep, curve, diversity, fidelity)
    return sweep.estimate(cells, _area_of, [True] * len(cells)) if cells else None


def area_difference(sweep: Sweep, a: Curve, b: Curve, diversity: str, fidelity: str) -> Estimate | None:
    """area(a) - area(b), paired over prompts when per-prompt values exist."""
    cells_a = _frontier_cells(sweep, a, diversity, fidelity)
    cells_b = _frontier_cells(sweep, b, diversity, fidelity)
    if not cells_a or not cells_b:
        return None
    n = len(cells_a)
    return sweep.estimate(cells_a + cells_b, lambda x: _area_of(x[:n]) - _area_of(x[n:]),
                          [True] * n + [False] * len(cells_b))


# ---------------------------------------------------------------- question 3: diversity under guidance


@dataclass(frozen=True)
class DiversityDrop:
    """Diversity at the lowest and highest guidance scale, the drop between them, and each as a fraction of the
    real ceiling (None when the run has no ceiling for the metric)."""

    curve: Curve
    metric: str
    low_guidance: float
    high_guidance: float
    start: Estimate
    end: Estimate
    drop: Estimate
    start_of_ceiling: Estimate | None
    end_of_ceiling: Estimate | None


def fraction_of_ceiling(sweep: Sweep, cell: Cell) -> Estimate | None:
    """cell / real ceiling of the same metric: 1 means as diverse (or faithful) as real images of the prompts."""
    ceiling = sweep.ceiling_cell(cell.metric)
    return sweep.estimate([cell, ceiling], lambda x: float(x[0] / x[1]), [True, False])


def diversity_drop(sweep: Sweep, curve: Curve, metric: str) -> DiversityDrop | None:
    scales = sweep.guidances(curve, metric)
    if len(scales) < 2:
        return None
    start, end = sweep.cell(curve, scales[0], metric), sweep.cell(curve, scales[-1], metric)
    return DiversityDrop(curve, metric, scales[0], scales[-1], sweep.value(start), sweep.value(end),
                         difference(sweep, start, end), fraction_of_ceiling(sweep, start),
                         fraction_of_ceiling(sweep, end))


def draw_pairs(sweep: Sweep, metric: str) -> list[tuple[Curve, Curve]]:
    """(fixed, per_sample) curves of every mode measured with both prior-draw policies."""
    curves = set(sweep.curves(metric))
    return [(c, Curve(c.mode, "per_sample")) for c in sorted(curves, key=Curve.sort_key)
            if c.prior_draw == "fixed" and Curve(c.mode, "per_sample") in curves]


def drop_gap(sweep: Sweep, fixed: Curve, per_sample: Curve, metric: str) -> Estimate | None:
    """drop(fixed) - drop(per_sample) over the scales both share: > 0 means a fixed draw loses more diversity."""
    scales = sorted(set(sweep.guidances(fixed, metric)) & set(sweep.guidances(per_sample, metric)))
    if len(scales) < 2:
        return None
    cells = [sweep.cell(c, g, metric) for c in (fixed, per_sample) for g in (scales[0], scales[-1])]
    return sweep.contrast(cells, [1.0, -1.0, -1.0, 1.0])


# ---------------------------------------------------------------- question 4: attention mass


@dataclass(frozen=True)
class AttentionSplit:
    """Attention mass on CLIP tokens and on text tokens at one guidance scale (and layer), and clip - text."""

    guidance: float
    clip: Estimate
    text: Estimate
    difference: Estimate


def attention_layers(sweep: Sweep) -> list[str]:
    """Layer names that have both a CLIP and a text attention metric (`attention_clip@down.1.attn`)."""
    clip = {m.partition("@")[2] for m in sweep.metrics_named(ATTENTION_CLIP + "@")}
    text = {m.partition("@")[2] for m in sweep.metrics_named(ATTENTION_TEXT + "@")}
    return sorted(clip & text)


def attention_split(sweep: Sweep, curve: Curve, layer: str | None = None) -> list[AttentionSplit]:
    suffix = f"@{layer}" if layer else ""
    clip_metric, text_metric = ATTENTION_CLIP + suffix, ATTENTION_TEXT + suffix
    splits = []
    for g in sweep.guidances(curve, clip_metric, text_metric):
        clip, text = sweep.cell(curve, g, clip_metric), sweep.cell(curve, g, text_metric)
        splits.append(AttentionSplit(g, sweep.value(clip), sweep.value(text), difference(sweep, clip, text)))
    return splits


# ---------------------------------------------------------------- question 5: binding


@dataclass(frozen=True)
class GroupContrast:
    """Mean over two groups of curves at one guidance scale, and the difference a - b."""

    guidance: float
    a: Estimate
    b: Estimate
    difference: Estimate


def group_curves(sweep: Sweep, modes: Sequence[str], metric: str) -> list[Curve]:
    """Curves of the given modes with the standard CLIP (hard-negative variants are question 5's second part)."""
    return [c for c in sweep.curves(metric) if c.mode in modes]


def group_contrast(sweep: Sweep, a: Sequence[Curve], b: Sequence[Curve], metric: str) -> list[GroupContrast]:
    """Mean of `metric` over the curves of a (each line counts once) against that of b, per shared scale."""
    if not a or not b:
        return []
    shared = reduce(set.intersection, (set(sweep.guidances(c, metric)) for c in [*a, *b]))
    rows = []
    for g in sorted(shared):
        cells_a, cells_b = [sweep.cell(c, g, metric) for c in a], [sweep.cell(c, g, metric) for c in b]
        mean_a = [1.0 / len(a)] * len(a)
        mean_b = [1.0 / len(b)] * len(b)
        rows.append(GroupContrast(g, sweep.contrast(cells_a, mean_a), sweep.contrast(cells_b, mean_b),
                                  sweep.contrast(cells_a + cells_b, mean_a + [-w for w in mean_b])))
    return rows


def hard_negative_pairs(sweep: Sweep, metric: str) -> list[tuple[Curve, Curve]]:
    """(hard-negative CLIP curve, same mode and draw with the standard CLIP) for every variant measured."""
    curves = set(sweep.curves(metric))
    return [(c, Curve(c.base_mode, c.prior_draw)) for c in sweep.curves(metric)
            if c.hard_negative and Curve(c.base_mode, c.prior_draw) in curves]
