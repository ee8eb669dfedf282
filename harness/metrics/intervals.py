"""The one interval engine: every number of the report (a cell, a difference, a drop, a frontier area) gets its
interval here, from tables of per-prompt contributions for each training seed.

Why not a bootstrap. Resampling prompts with replacement puts duplicated samples into set metrics (a duplicate
sits at distance 0 from its copy, so precision, recall and FID move just because of the resampling) and, with
three to five training seeds, a bootstrap over seeds is far too narrow. Instead:

- A *contribution table* psi[S, P] holds, for each training seed s and prompt p, what prompt p contributes to
  the seed's statistic, so that the statistic is the mean over prompts of its row. For a mean metric
  (accuracy, entropy, ...) that is the prompt's own value. For a set metric (FID, KID, precision, ...) it is
  the prompt's centred jackknife pseudo-value, from recomputing the metric without that prompt (Quenouille
  1956; Efron & Stein 1981): deleting never duplicates anything, and the pseudo-values' spread is the
  jackknife variance. `pseudo_values` makes them.
- A function of several cells (a difference, a ratio, an area) gets its own table by linearisation (the delta
  method): psi_f = f(theta) + grad f . (psi_cells - theta). Cells of one trained decoder (a mode's lines,
  arms and guidance scales) share its seeds and are summed seed by seed; decoders of different modes are
  independent models, so each is its own *group* with as many seeds as it has (`crossed_variance`). All are
  scored on the same prompts, so prompt difficulty shared by every side cancels (paired).
- The variance of the estimate over seeds and prompts is that of a crossed random-effects design (Searle,
  Casella & McCulloch 1992, "Variance Components", ch. 4): var = sigma2_seed / S + sigma2_prompt / P +
  sigma2_residual / (S P). It is estimated as the variance of each group's seed means over its S_g seeds
  (which holds the seed and the residual part) plus the prompts' main effect (the prompt columns' variance
  less the residual's share), the latter cut at 0: when prompts add nothing beyond the residual, the
  interval is the seed means' own t interval, with S - 1 degrees of freedom (not the residual's, which would
  pretend to hundreds). Degrees of freedom: Welch-Satterthwaite over the terms used, but never more than the
  seed part's own with fewer than four seeds; Student-t interval.
- One seed leaves the seed part unknown. The interval then covers prompt variation only (`seed_term` PROMPTS_ONLY);
  the report either borrows the seed part from a declared pilot study (`with_pilot`, harness/report/pilot.py)
  or reads the contrast as a fact about the trained decoders in hand.

Intervals of contrasts are symmetric about the estimate, so none can exclude it. A cell of a proportion (a
metric in [0, 1]) gets Wilson's score interval at the effective sample size its variance implies (Wilson 1927),
which is never degenerate at 0 or 1 and always contains the estimate. tests/test_coverage.py holds each
interval type to 93-97% coverage of a known truth over at least 1,000 repetitions.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
POWER = 0.8

# Where an interval's training-seed variance comes from.
RUN, PROMPTS_ONLY, UNTRAINED = "run", "none", ""  # the run's own seeds; one seed, not carried; real images (no training)
PILOT = "pilot"  # borrowed from a pilot study: `pilot <name>`
FEW_SEEDS = 4  # below this many seeds per decoder, the seed means' own degrees of freedom (see crossed_variance)


@dataclass(frozen=True)
class Components:
    """Variance components of one statistic in the crossed seeds x prompts design: var = seed / S + prompt / P
    + residual / (S P). `seed_df` is the seed part's Satterthwaite degrees of freedom. A pilot study ships these
    per primary contrast; `variance` and `detectable` then size a run before it is launched."""

    seed: float
    prompt: float
    residual: float
    seed_df: float
    seeds: int
    prompts: int
    decoders: int = 1  # the trained decoders the contrast reads (one per mode)

    def variance(self, seeds: int, prompts: int) -> float:
        return self.seed / seeds + self.prompt / prompts + self.residual / (seeds * prompts)

    def df(self, seeds: int, prompts: int) -> float:
        """Degrees of freedom of a run of `seeds` seeds and `prompts` prompts: its seed part's are the pilot's at
        one seed (borrowed, `with_pilot`) and its own seeds' otherwise, capped as `crossed_variance` caps them."""
        seed_part, rest = self.seed / seeds, self.prompt / prompts + self.residual / (seeds * prompts)
        seed_df = self.seed_df if seeds == 1 else self.decoders * (seeds - 1.0)
        df = satterthwaite([seed_part, rest], [seed_df, max(prompts - 1, 1)])
        capped = seed_part >= rest if seeds == 1 else seeds < FEW_SEEDS
        return min(df, seed_df) if capped else df

    def detectable(self, seeds: int, prompts: int, alpha: float = 1 - CONFIDENCE, power: float = POWER) -> float:
        """The minimal detectable difference of a run of `seeds` seeds per decoder and `prompts` prompts."""
        return detectable(math.sqrt(self.variance(seeds, prompts)), self.df(seeds, prompts), alpha, power)

    def seeds_to_detect(self, difference: float, prompts: int, alpha: float = 1 - CONFIDENCE,
                        power: float = POWER, fewest: int = 1, most: int = 200) -> int | None:
        """The fewest seeds per decoder, from `fewest` up, whose minimal detectable difference at `prompts` prompts
        is at most `difference`; None when even `most` seeds cannot (more prompts are needed). Not monotone:
        two or three seeds estimate their own seed variance on one or two degrees of freedom."""
        return next((s for s in range(fewest, most + 1) if self.detectable(s, prompts, alpha, power) <= difference),
                    None)


@dataclass(frozen=True)
class Interval:
    """An estimate, its interval and what it rests on.

    `se` and `df` make a t statistic (`p_value`) and a minimal detectable difference (`detectable`); `prompts`
    and `seeds` are the counts the variance was estimated from. `seed_term` says whether the training seeds'
    variance is in it: RUN (estimated from the run's seeds), `pilot <name>` (borrowed), PROMPTS_ONLY (one seed: prompt
    variation only) or UNTRAINED (real images). `components` is the variance split of a multi-seed estimate."""

    value: float
    low: float
    high: float
    se: float = math.nan
    df: float = math.nan
    prompts: int = 0
    seeds: int = 0
    seed_term: str = PROMPTS_ONLY
    components: Components | None = None

    @property
    def carries_seeds(self) -> bool:
        """Whether the interval holds the variance of training: a claim about modes, not about these decoders."""
        return self.seed_term != PROMPTS_ONLY

    def excludes(self, x: float = 0.0) -> bool:
        return self.low > x or self.high < x

    def p_value(self, null: float = 0.0) -> float:
        """Two-sided p-value of value == null under the t reference distribution of the interval; NaN when the
        contributions do not vary at all (no test can be made; the family counts it as not rejected)."""
        if not math.isfinite(self.value) or not math.isfinite(self.se) or not math.isfinite(self.df):
            return math.nan
        if self.se == 0:
            return 1.0 if self.value == null else math.nan
        return float(2 * stats.t.sf(abs(self.value - null) / self.se, self.df))

    def equivalence_p(self, margin: float) -> float:
        """Two one-sided tests (Schuirmann 1987) of |value| >= margin: small when the estimate lies within
        ±margin by more than its uncertainty; it enters a Holm family like any p-value."""
        if not math.isfinite(self.value) or not (self.se > 0) or not math.isfinite(self.df):
            return math.nan
        return float(max(stats.t.sf((self.value + margin) / self.se, self.df),
                         stats.t.sf((margin - self.value) / self.se, self.df)))

    def detectable(self, alpha: float = 1 - CONFIDENCE, power: float = POWER) -> float:
        """Minimal detectable difference: the smallest true effect a two-sided level-`alpha` test with this
        standard error finds with probability `power` (the usual (t_{1-alpha/2} + t_power) * se)."""
        return detectable(self.se, self.df, alpha, power)


NOT_AVAILABLE = Interval(math.nan, math.nan, math.nan)


@functools.lru_cache(maxsize=4096)
def t_quantile(q: float, df: float) -> float:
    """Student's t quantile, remembered: a report asks for the same few (confidence, df) thousands of times."""
    return float(stats.t.ppf(q, df))


def detectable(se: float, df: float, alpha: float = 1 - CONFIDENCE, power: float = POWER) -> float:
    """(t_{1-alpha/2} + t_power) * se; NaN when nothing varied (se 0): the run cannot gauge its own precision."""
    if not math.isfinite(se) or not math.isfinite(df) or se <= 0:
        return math.nan
    return float((t_quantile(1 - alpha / 2, df) + t_quantile(power, df)) * se)


def satterthwaite(terms: Sequence[float], dfs: Sequence[float]) -> float:
    """Welch-Satterthwaite degrees of freedom of a sum of independent mean-square terms."""
    terms, dfs = np.asarray(terms, dtype=float), np.asarray(dfs, dtype=float)
    denominator = np.sum(terms ** 2 / dfs)
    return float(np.sum(terms) ** 2 / denominator) if denominator > 0 else float(np.min(dfs))


def pseudo_values(value: float, leave_one_out: np.ndarray) -> np.ndarray:
    """Centred jackknife pseudo-values: value + (n - 1) (mean(loo) - loo_p), one per deleted prompt.

    Their mean is `value` itself (not the jackknife's bias-corrected estimate), so a cell's point is the metric
    as computed on all prompts, and their variance / n is the jackknife variance. For a mean over prompts they
    are the prompts' own values."""
    loo = np.asarray(leave_one_out, dtype=float)
    return value + (len(loo) - 1) * (loo.mean() - loo)


def fill_prompts(table: np.ndarray) -> np.ndarray:
    """A complete [S, P] table from one with NaN where a seed has no value for a prompt (every row has some).

    Within a seed, the present prompts' deviations from the seed's mean are scaled by P / n_present and the
    absent prompts get the mean, which keeps the row mean and the row's jackknife variance of a mean over its
    n_present prompts. Seeds are never filled: a decoder with fewer seeds is its own group (`crossed_variance`)."""
    table = np.asarray(table, dtype=float)
    present = ~np.isnan(table)
    if present.all():
        return table
    counts = present.sum(axis=1)
    if (counts == 0).any():
        raise ValueError("fill_prompts: a seed without any value; drop it before filling")
    means = np.where(present, table, 0.0).sum(axis=1) / counts
    scaled = means[:, None] + (table - means[:, None]) * (table.shape[1] / counts)[:, None]
    return np.where(present, scaled, means[:, None])


@dataclass(frozen=True)
class Group:
    """The linearised contributions of one trained decoder's cells, [S, P] (or [..., S, P] for a batch of
    synthetic runs): seeds are its own, prompts shared with every other group. `trained` is False for the real
    images, whose single row has no seed to vary."""

    table: np.ndarray
    trained: bool = True


def crossed_variance(groups: Sequence[Group]) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """(value, variance, df, seed part estimated) of the sum over groups of each group's mean contribution.

    Works on a leading batch axis too (tables [..., S_g, P]), so the coverage tests run thousands of synthetic
    studies at once. See the module docstring for the estimator."""
    tables = [np.asarray(g.table, dtype=float) for g in groups]
    prompts = tables[0].shape[-1]
    value = sum(t.mean(axis=(-2, -1)) for t in tables)
    columns = sum(t.mean(axis=-2) for t in tables)  # [..., P]: each prompt's contribution, seeds averaged
    prompt_term = columns.var(axis=-1, ddof=1) / prompts
    seed_terms, seed_dfs, residual_terms, residual_dfs = [], [], [], []
    estimated = True
    for group, t in zip(groups, tables):
        seeds = t.shape[-2]
        if seeds < 2:
            estimated &= not group.trained
            continue
        row_means = t.mean(axis=-1)
        seed_terms.append(row_means.var(axis=-1, ddof=1) / seeds)
        seed_dfs.append(seeds - 1.0)
        residual = t - row_means[..., :, None] - t.mean(axis=-2)[..., None, :] + t.mean(axis=(-2, -1))[..., None, None]
        df_residual = (seeds - 1.0) * (prompts - 1.0)
        residual_terms.append((residual ** 2).sum(axis=(-2, -1)) / df_residual / (seeds * prompts))
        residual_dfs.append(df_residual)
    if not seed_terms:  # one seed everywhere: the prompt columns hold everything the run can see
        return value, prompt_term, np.full(np.shape(value), prompts - 1.0), False
    seed_sum = sum(seed_terms)
    prompt_main = prompt_term - sum(residual_terms)
    keep = prompt_main > 0
    variance = seed_sum + np.where(keep, prompt_main, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        seed_only = seed_sum ** 2 / sum(s ** 2 / d for s, d in zip(seed_terms, seed_dfs))
        with_prompts = variance ** 2 / (sum(s ** 2 / d for s, d in zip(seed_terms, seed_dfs))
                                        + prompt_term ** 2 / (prompts - 1.0)
                                        + sum(r ** 2 / d for r, d in zip(residual_terms, residual_dfs)))
    df = np.where(keep, with_prompts, seed_only)
    df = np.where(np.isfinite(df), df, min(seed_dfs))
    if min(seed_dfs) < FEW_SEEDS - 1:
        # With two or three seeds the seed part's estimate is so noisy that Satterthwaite's df, large whenever that
        # estimate happens to come out small, covered 88% (two seeds) and 92.6% (three) of synthetic studies; the
        # seed part's own df keeps the interval valid there (tests/test_coverage_seeds.py).
        df = np.minimum(df, np.where(np.isfinite(seed_only), seed_only, min(seed_dfs)))
    return value, variance, df, estimated


def components(groups: Sequence[Group]) -> Components | None:
    """The variance components of a multi-seed estimate (None when a trained group has one seed): what a pilot
    study ships to size or complete a later run of the same recipe. Per group g: residual = its interaction
    mean square, seed = its seed means' variance less residual / P; the prompts' main effect is the prompt
    columns' variance less each group's residual / S_g. Seed and residual parts add over groups (independent
    decoders), so `Components.variance(S, P)` is the variance with S seeds per decoder."""
    tables = [np.asarray(g.table, dtype=float) for g in groups]
    prompts = tables[0].shape[-1]
    multi = [t for g, t in zip(groups, tables) if g.trained]
    if not multi or any(t.shape[0] < 2 for t in multi) or prompts < 2:
        return None
    seed_means, residuals = [], []
    for t in multi:
        residual = t - t.mean(axis=1)[:, None] - t.mean(axis=0)[None, :] + t.mean()
        residuals.append(float((residual ** 2).sum() / ((t.shape[0] - 1) * (prompts - 1))))
        seed_means.append(float(t.mean(axis=1).var(ddof=1)))
    columns = sum(t.mean(axis=0) for t in tables)
    seed = sum(seed_means) - sum(residuals) / prompts
    prompt = float(columns.var(ddof=1)) - sum(r / t.shape[0] for r, t in zip(residuals, multi))
    dfs = [t.shape[0] - 1.0 for t in multi]
    # Satterthwaite for the difference seed means - residual / P, both terms' noise counted.
    noise = (sum(m ** 2 / d for m, d in zip(seed_means, dfs))
             + sum((r / prompts) ** 2 / (d * (prompts - 1)) for r, d in zip(residuals, dfs)))
    seed_df = seed ** 2 / noise if seed > 0 and noise > 0 else min(dfs)
    return Components(seed=max(seed, 0.0), prompt=max(prompt, 0.0), residual=sum(residuals), seed_df=seed_df,
                      seeds=min(t.shape[0] for t in multi), prompts=prompts, decoders=len(multi))


def grouped_interval(groups: Sequence[Group], confidence: float = CONFIDENCE) -> Interval:
    """The sum of the groups' mean contributions with its crossed seeds x prompts t interval (module docstring)."""
    prompts = np.asarray(groups[0].table).shape[-1]
    trained = [np.asarray(g.table).shape[0] for g in groups if g.trained]
    seeds = min(trained) if trained else 0
    value = float(sum(np.asarray(g.table, dtype=float).mean() for g in groups))
    if prompts < 2 or not math.isfinite(value):
        return Interval(value, math.nan, math.nan, prompts=prompts, seeds=seeds,
                        seed_term=PROMPTS_ONLY if trained else UNTRAINED)
    _, variance, df, estimated = crossed_variance(groups)
    term = UNTRAINED if not trained else RUN if estimated else PROMPTS_ONLY
    return _t_interval(value, float(variance), float(df), confidence, prompts, seeds, term,
                       components(groups) if term == RUN else None)


def _t_interval(value: float, variance: float, df: float, confidence: float, prompts: int, seeds: int,
                seed_term: str, parts: Components | None = None) -> Interval:
    se = math.sqrt(max(variance, 0.0))
    half = t_quantile(0.5 + confidence / 2, df) * se if se > 0 else 0.0
    return Interval(value, value - half, value + half, se, df, prompts, seeds, seed_term, parts)


def crossed_interval(table: np.ndarray, confidence: float = CONFIDENCE,
                     bounds: tuple[float, float] | None = None, trained: bool = True) -> Interval:
    """Mean of one decoder's complete [S, P] contribution table with its crossed seeds x prompts interval; a
    metric with `bounds` (0, 1) gets Wilson's interval (`bounded`)."""
    return bounded(grouped_interval([Group(np.asarray(table, dtype=float), trained)], confidence), bounds,
                   confidence)


def bounded(interval: Interval, bounds: tuple[float, float] | None, confidence: float = CONFIDENCE) -> Interval:
    """A cell's interval within the metric's range. A proportion (range [0, 1]) gets Wilson's score interval at
    the effective sample size n = p (1 - p) / se^2 its variance implies, with the t quantile of its degrees of
    freedom; where the values do not vary (every prompt right, or none), n is the count of prompts x seeds. Any
    other range cuts the interval."""
    if bounds is None or not math.isfinite(interval.value) or not math.isfinite(interval.df):
        return interval
    low, high = bounds
    if (low, high) != (0.0, 1.0):
        return replace(interval, low=max(interval.low, low), high=min(interval.high, high))
    p = min(max(interval.value, 0.0), 1.0)
    spread = p * (1 - p)
    n = spread / interval.se ** 2 if interval.se > 0 and spread > 0 else interval.prompts * max(interval.seeds, 1)
    z = t_quantile(0.5 + confidence / 2, interval.df)
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(spread / n + z * z / (4 * n * n))
    return replace(interval, low=max(0.0, min(centre - half, p)), high=min(1.0, max(centre + half, p)))


def mean_interval(values: np.ndarray, confidence: float = CONFIDENCE,
                  bounds: tuple[float, float] | None = None) -> Interval:
    """Mean of per-prompt values of one seed (NaN ignored) with its t interval: `crossed_interval` of one row."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return NOT_AVAILABLE
    return crossed_interval(values[None, :], confidence, bounds)


def with_pilot(interval: Interval, pilot: Components, name: str, confidence: float = CONFIDENCE) -> Interval:
    """A one-seed estimate's interval with the seed variance borrowed from a pilot study of the same recipe:
    var = se^2 (the run's prompts) + seed / S, degrees of freedom by Satterthwaite with the pilot's own (and no
    more than the pilot's where its seed part dominates)."""
    if interval.seed_term != PROMPTS_ONLY or not math.isfinite(interval.se):
        return interval
    seed_part = pilot.seed / max(interval.seeds, 1)
    variance = interval.se ** 2 + seed_part
    df = satterthwaite([interval.se ** 2, seed_part], [interval.df, pilot.seed_df])
    if seed_part >= interval.se ** 2:
        # Where the pilot's few seeds carry most of the variance, Satterthwaite's df is largest exactly when the
        # pilot happened to see little seed variance, and covered 92.6% of synthetic runs; the pilot's own df
        # covers (benchmarks/coverage.py).
        df = min(df, pilot.seed_df)
    return _t_interval(interval.value, variance, df, confidence, interval.prompts, interval.seeds,
                       f"{PILOT} {name}", pilot)


def gradient(fn: Callable[[np.ndarray], float], x: np.ndarray) -> np.ndarray:
    """Central-difference gradient of fn at x (the functions here are smooth or piecewise linear)."""
    x = np.asarray(x, dtype=float)
    steps = 1e-6 * np.maximum(1.0, np.abs(x))
    grad = np.empty(len(x))
    for i, h in enumerate(steps):
        up, down = x.copy(), x.copy()
        up[i] += h
        down[i] -= h
        grad[i] = (fn(up) - fn(down)) / (2 * h)
    return grad


def linearise(tables: Sequence[np.ndarray], group_of: Sequence[int], trained: Sequence[bool],
              fn: Callable[[np.ndarray], float]) -> tuple[float, list[Group]]:
    """fn of the cells' means and its linearised contribution tables, one per group (`group_of[i]` is cell i's
    group; the cells of a group share its seeds, every table shares the prompts)."""
    means = np.array([np.asarray(t, dtype=float).mean() for t in tables])
    value = float(fn(means))
    grad = gradient(fn, means)
    grad = np.where(np.isfinite(grad), grad, 0.0)
    groups: dict[int, np.ndarray] = {}
    for table, g, slope, mean in zip(tables, group_of, grad, means):
        part = slope * (np.asarray(table, dtype=float) - mean)
        groups[g] = part if g not in groups else groups[g] + part
    order = list(dict.fromkeys(group_of))
    out = [Group(groups[g] + (value if i == 0 else 0.0), trained[group_of.index(g)]) for i, g in enumerate(order)]
    return value, out


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979): family-wise error control for any dependence. Every
    entry counts in the family: one without a p-value (NaN: not measured, or nothing to test) is never rejected
    and adjusts as if it were 1, so a family does not shrink when a declared contrast comes out n/a."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    filled = np.where(np.isnan(p), 1.0, p)
    adjusted = np.full(m, np.nan)
    running = 0.0
    for rank, i in enumerate(np.argsort(filled, kind="stable")):
        running = max(running, min(1.0, (m - rank) * filled[i]))
        adjusted[i] = running if not np.isnan(p[i]) else np.nan
    return adjusted.tolist()
