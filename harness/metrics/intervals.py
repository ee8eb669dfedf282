"""The one interval engine: every number of the report (a cell, a difference, a drop, a frontier area) gets its
interval here, from a table of per-prompt contributions for each training seed.

Why not a bootstrap. Resampling prompts with replacement puts duplicated samples into set metrics (a duplicate
sits at distance 0 from its copy, so precision, recall and FID move just because of the resampling) and, with
three to five training seeds, a bootstrap over seeds is far too narrow. Instead:

- A *contribution table* psi[S, P] holds, for each training seed s and prompt p, what prompt p contributes to
  the seed's statistic, so that the statistic is the mean over prompts of its row. For a mean metric
  (accuracy, entropy, ...) that is the prompt's own value. For a set metric (FID, KID, precision, ...) it is
  the prompt's centred jackknife pseudo-value, from recomputing the metric without that prompt (Quenouille
  1956; Efron & Stein 1981): deleting never duplicates anything, and the pseudo-values' spread is the
  jackknife variance. `pseudo_values` makes them.
- The statistic over seeds is the mean of the rows. Prompts and seeds are crossed (every seed is scored on
  the same prompts), so its variance has a seed, a prompt and an interaction part; `crossed_interval` estimates
  them from the two-way table's mean squares (the random-effects ANOVA of a crossed design; Searle, Casella &
  McCulloch 1992, "Variance Components", ch. 4): var = (MS_seed + MS_prompt - MS_residual) / (S P), with
  Welch-Satterthwaite degrees of freedom and a Student-t interval. One seed leaves the seed part unknown: the
  interval then covers prompt variation only, and says so (`seeds == 1`).
- A function of several cells (a difference, a ratio, an area) gets its own table by linearisation (the delta
  method): psi_f = f(theta) + grad f . (psi_cells - theta). Cells scored on the same prompts by seeds of the
  same index are paired this way, so prompt difficulty shared by both sides cancels.

Intervals are symmetric about the estimate, so none can exclude it; a metric with a known range (an accuracy in
[0, 1]) has its interval cut to that range. tests/test_coverage.py holds each interval type to 93-97% coverage
of a known truth.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
POWER = 0.8


@dataclass(frozen=True)
class Interval:
    """An estimate, its interval and what it rests on.

    `se` and `df` make a t statistic (`p_value`) and a minimal detectable difference (`detectable`); `prompts`
    and `seeds` are the counts the variance was estimated from (`seeds == 1`: prompt variation only)."""

    value: float
    low: float
    high: float
    se: float = math.nan
    df: float = math.nan
    prompts: int = 0
    seeds: int = 0

    def excludes(self, x: float = 0.0) -> bool:
        return self.low > x or self.high < x

    def p_value(self, null: float = 0.0) -> float:
        """Two-sided p-value of value == null under the t reference distribution of the interval."""
        if not math.isfinite(self.value) or not math.isfinite(self.se):
            return math.nan
        if self.se == 0:
            return 1.0 if self.value == null else 0.0
        return float(2 * stats.t.sf(abs(self.value - null) / self.se, self.df))

    def detectable(self, alpha: float = 1 - CONFIDENCE, power: float = POWER) -> float:
        """Minimal detectable difference: the smallest true effect a two-sided level-`alpha` test with this
        standard error finds with probability `power` (the usual (t_{1-alpha/2} + t_power) * se)."""
        if not math.isfinite(self.se):
            return math.nan
        return float((t_quantile(1 - alpha / 2, self.df) + t_quantile(power, self.df)) * self.se)


NOT_AVAILABLE = Interval(math.nan, math.nan, math.nan)


@functools.lru_cache(maxsize=4096)
def t_quantile(q: float, df: float) -> float:
    """Student's t quantile, remembered: a report asks for the same few (confidence, prompts - 1) thousands of
    times, and scipy's ppf cost the quick preset's metrics table 2 s."""
    return float(stats.t.ppf(q, df))


def pseudo_values(value: float, leave_one_out: np.ndarray) -> np.ndarray:
    """Centred jackknife pseudo-values: value + (n - 1) (mean(loo) - loo_p), one per deleted prompt.

    Their mean is `value` itself (not the jackknife's bias-corrected estimate), so a cell's point is the metric
    as computed on all prompts, and their variance / n is the jackknife variance. For a mean over prompts they
    are the prompts' own values."""
    loo = np.asarray(leave_one_out, dtype=float)
    return value + (len(loo) - 1) * (loo.mean() - loo)


def fill_absent(table: np.ndarray) -> np.ndarray:
    """A complete [S, P] table from one with NaN where a seed has no value for a prompt.

    Within a seed, the present prompts' deviations from the seed's mean are scaled by P / n_present and the
    absent prompts get the mean, which keeps the row mean and the row's jackknife variance of a mean over its
    n_present prompts. A seed with no value at all (a cell trained with fewer seeds than the others it is
    compared with) gets the column means: it adds nothing to the seed variance."""
    table = np.asarray(table, dtype=float)
    present = ~np.isnan(table)
    filled = table.copy()
    counts = present.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(present, table, 0.0).sum(axis=1) / counts
        scaled = means[:, None] + (table - means[:, None]) * (table.shape[1] / counts)[:, None]
    rows = counts > 0
    filled[rows] = np.where(present[rows], scaled[rows], means[rows, None])
    if not rows.all():
        filled[~rows] = filled[rows].mean(axis=0)
    return filled


def crossed_interval(table: np.ndarray, confidence: float = CONFIDENCE,
                     bounds: tuple[float, float] | None = None, seeds: int | None = None) -> Interval:
    """Mean of a complete [S, P] contribution table with its crossed seeds x prompts interval (module docstring).

    `seeds` overrides the seed count reported: when a cell with one seed is compared with cells with several,
    its row is broadcast (`fill_absent`) and the interval lacks that cell's seed variation, which the reported
    count of 1 flags. `bounds` cuts the interval to the metric's range."""
    psi = np.asarray(table, dtype=float)
    n_seeds, n_prompts = psi.shape
    value = float(psi.mean())
    real_seeds = n_seeds if seeds is None else seeds
    if n_prompts < 2 or not math.isfinite(value):
        return Interval(value, math.nan, math.nan, prompts=n_prompts, seeds=real_seeds)
    seed_means, prompt_means = psi.mean(axis=1), psi.mean(axis=0)
    ms_prompt = n_seeds * np.sum((prompt_means - value) ** 2) / (n_prompts - 1)
    if n_seeds == 1:
        variance, df = ms_prompt / n_prompts, n_prompts - 1.0
    else:
        ms_seed = n_prompts * np.sum((seed_means - value) ** 2) / (n_seeds - 1)
        residual = psi - seed_means[:, None] - prompt_means[None, :] + value
        df_residual = (n_seeds - 1) * (n_prompts - 1)
        ms_residual = np.sum(residual ** 2) / df_residual
        combined = ms_seed + ms_prompt - ms_residual
        if combined <= ms_residual:  # the interaction alone is a lower bound on the variance of the mean
            combined, df = ms_residual, float(df_residual)
        else:
            df = combined ** 2 / (ms_seed ** 2 / (n_seeds - 1) + ms_prompt ** 2 / (n_prompts - 1)
                                  + ms_residual ** 2 / df_residual)
        variance = combined / (n_seeds * n_prompts)
    se = math.sqrt(max(float(variance), 0.0))
    half = t_quantile(0.5 + confidence / 2, df) * se if se > 0 else 0.0
    low, high = value - half, value + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return Interval(value, low, high, se, float(df), n_prompts, real_seeds)


def mean_interval(values: np.ndarray, confidence: float = CONFIDENCE,
                  bounds: tuple[float, float] | None = None) -> Interval:
    """Mean of per-prompt values of one seed (NaN ignored) with its t interval: `crossed_interval` of one row."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return NOT_AVAILABLE
    return crossed_interval(values[None, :], confidence, bounds)


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


def combine(tables: Sequence[np.ndarray], fn: Callable[[np.ndarray], float]) -> tuple[float, np.ndarray]:
    """fn of the cells' means and its linearised contribution table (tables aligned on seeds and prompts)."""
    stacked = np.stack([np.asarray(t, dtype=float) for t in tables])  # [cells, S, P]
    means = stacked.mean(axis=(1, 2))
    value = float(fn(means))
    grad = gradient(fn, means)
    grad = np.where(np.isfinite(grad), grad, 0.0)
    return value, value + np.tensordot(grad, stacked - means[:, None, None], axes=1)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979): family-wise error control for any dependence."""
    p = np.asarray(p_values, dtype=float)
    m = int(np.sum(~np.isnan(p)))
    adjusted = np.full(len(p), np.nan)
    order = [i for i in np.argsort(np.where(np.isnan(p), np.inf, p)) if not np.isnan(p[i])]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()
