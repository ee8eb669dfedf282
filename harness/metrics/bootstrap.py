"""Percentile bootstrap confidence intervals over prompts (Efron & Tibshirani 1993, "An Introduction to the
Bootstrap", ch. 13).

Prompts are the resampling unit because they are the independent draws of an evaluation: the K samples of one
prompt share its caption and are correlated, so resampling samples would give intervals that are too narrow.
Everything is deterministic given `seed`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

Statistic = Callable[[np.ndarray], float | np.ndarray]


class Interval(NamedTuple):
    """Point estimate on all prompts and the bootstrap interval; floats, or arrays for vector statistics."""

    value: float | np.ndarray
    low: float | np.ndarray
    high: float | np.ndarray


def mean_over_prompts(values: np.ndarray) -> float | np.ndarray:
    """Default statistic: the mean over the prompt axis (axis 0), per remaining entry for [P, ...] input."""
    return np.mean(values, axis=0)


def _unwrap(x: np.ndarray) -> float | np.ndarray:
    return x.item() if x.ndim == 0 else x


def bootstrap_statistic(
    prompt_ids: ArrayLike,
    fn: Statistic,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Bootstrap any statistic of a set of prompts, e.g. FID of the samples of the selected prompts.

    `fn` receives an array of prompt ids drawn with replacement (duplicates included: a prompt drawn twice must
    contribute its samples twice) and returns a float or an array. The value is `fn(prompt_ids)`; the interval
    is the percentile interval of `fn` over `resamples` draws, ignoring draws where `fn` returned NaN.
    """
    ids = np.asarray(prompt_ids)
    if len(ids) == 0:
        return Interval(np.nan, np.nan, np.nan)
    value = np.asarray(fn(ids), dtype=float)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(ids), size=(resamples, len(ids)))
    stats = np.stack([np.asarray(fn(ids[d]), dtype=float) for d in draws])
    tail = (1.0 - confidence) / 2.0
    low, high = np.nanquantile(stats, [tail, 1.0 - tail], axis=0)
    return Interval(_unwrap(value), _unwrap(low), _unwrap(high))


def _prompt_rows(values: ArrayLike) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim == 0:
        raise ValueError("expected per-prompt values with the prompt axis first, got a scalar")
    return array


def _finite_prompts(*arrays: np.ndarray) -> np.ndarray:
    # A prompt is dropped if any of its entries is NaN in any array, so every statistic sees the same prompts.
    keep = np.ones(len(arrays[0]), dtype=bool)
    for array in arrays:
        keep &= ~np.isnan(array.reshape(len(array), -1)).any(axis=1)
    return keep


def bootstrap_ci(
    per_prompt_values: ArrayLike,
    statistic: Statistic = mean_over_prompts,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap of `statistic` over per-prompt values of shape [P] or [P, ...].

    `statistic` gets the selected rows (prompt axis first). Prompts with a NaN value are ignored; if none is
    left, value and bounds are NaN.
    """
    values = _prompt_rows(per_prompt_values)
    values = values[_finite_prompts(values)]
    return bootstrap_statistic(
        np.arange(len(values)), lambda idx: statistic(values[idx]), resamples, confidence, seed
    )


def paired_difference_ci(
    a_per_prompt: ArrayLike,
    b_per_prompt: ArrayLike,
    statistic: Statistic = mean_over_prompts,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Paired bootstrap of statistic(a) - statistic(b) for two modes scored on the same prompts.

    Both are evaluated on the same resampled prompts in each draw, so prompt difficulty, shared by the two
    modes, cancels out and the interval is much tighter than comparing two separate intervals. Row i of both
    arrays must be the same prompt; prompts with NaN in either are ignored.
    """
    a, b = _prompt_rows(a_per_prompt), _prompt_rows(b_per_prompt)
    if a.shape != b.shape:
        raise ValueError(f"paired values must have the same shape, got {a.shape} and {b.shape}")
    keep = _finite_prompts(a, b)
    a, b = a[keep], b[keep]
    return bootstrap_statistic(
        np.arange(len(a)), lambda idx: statistic(a[idx]) - statistic(b[idx]), resamples, confidence, seed
    )
