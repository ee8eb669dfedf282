"""Coverage of the seed-level intervals on synthetic studies with a known truth, at 1,000 to 4,000 repetitions, so
that a method covering 92% instead of 95% fails: with 4,000 repetitions the standard error of a coverage is
0.0034, and 0.92 lies three of them below the 0.93 floor. The variance engine works on a leading batch axis, so
most scenarios run thousands of studies at once.

Each study is built like the project's: training seeds shift a decoder as a whole, prompts have effects of their
own shared by every decoder scored on them, and what is left is the seed x prompt interaction. The truth is the
population mean over seeds and prompts: a claim about the modes, not about the decoders one run trained.
`benchmarks/coverage.py` prints every scenario's coverage (the table in docs/reading-the-report.md)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from harness.metrics.intervals import (Group, Interval, components, crossed_variance, grouped_interval, holm,
                                       linearise, mean_interval, with_pilot)
from harness.report.contrasts import diversity_at_matched_fidelity, matched_difference
from harness.line import Line
from harness.metrics.estimate import Sweep

LOW, HIGH = 0.93, 0.97
REPS = 4000


def studies(rng: np.random.Generator, reps: int, seeds: int, prompts: int, seed_sd: float,
            residual_sd: float, prompt_effects: np.ndarray) -> np.ndarray:
    """[reps, seeds, prompts] contributions of one decoder with population mean 0 (plus the prompt effects)."""
    return (rng.normal(0, seed_sd, (reps, seeds, 1)) + prompt_effects
            + rng.normal(0, residual_sd, (reps, seeds, prompts)))


def covered(groups: list[Group], truth: float = 0.0) -> float:
    value, variance, df, _ = crossed_variance(groups)
    return float(np.mean(np.abs(value - truth) <= stats.t.ppf(0.975, df) * np.sqrt(variance)))


@dataclass(frozen=True)
class Scenario:
    label: str
    reps: int
    coverage: Callable[[], float]
    low: float = LOW
    high: float = HIGH


def cell(seeds: int, seed_sd: float, prompt_sd: float) -> Callable[[], float]:
    def run() -> float:
        rng = np.random.default_rng(seeds * 100 + int(1000 * seed_sd))
        return covered([Group(studies(rng, REPS, seeds, 48, seed_sd, 0.1, rng.normal(0, prompt_sd, (REPS, 1, 48))))])
    return run


def unequal_seeds(fill: bool) -> Callable[[], float]:
    """Five seeds of one decoder against three of another on shared prompts; `fill`: the old method, b's two
    missing seeds filled with its mean and paired seed by seed."""
    def run() -> float:
        rng = np.random.default_rng(11)
        difficulty = rng.normal(0, 0.15, (REPS, 1, 36))
        a = studies(rng, REPS, 5, 36, 0.08, 0.1, difficulty + rng.normal(0, 0.05, (REPS, 1, 36)))
        b = studies(rng, REPS, 3, 36, 0.08, 0.1, difficulty + rng.normal(0, 0.05, (REPS, 1, 36)))
        if not fill:
            return covered([Group(a), Group(-b)])
        filled = np.concatenate([b, np.repeat(b.mean(axis=1, keepdims=True), 2, axis=1)], axis=1)
        return covered([Group(a - filled)])
    return run


def drop_within_one_decoder() -> float:
    """Guidance 1 minus guidance 8 of one decoder over four seeds: its seed effect is in both and cancels."""
    rng = np.random.default_rng(12)
    seed_effect = rng.normal(0, 0.2, (REPS, 4, 1))
    prompts = rng.normal(0, 0.1, (REPS, 1, 30))
    low_g = seed_effect + prompts + rng.normal(0, 0.05, (REPS, 4, 30))
    high_g = seed_effect + 0.5 * prompts + rng.normal(0, 0.05, (REPS, 4, 30))
    return covered([Group(low_g - high_g)])


def one_seed(borrow: bool) -> Callable[[], float]:
    """One seed, 144 prompts, seeds dominating: the prompt-only interval against the mode-level truth, or with the
    seed variance of an independent five-seed pilot of 72 prompts."""
    def run() -> float:
        rng = np.random.default_rng(13)
        hits = []
        for _ in range(REPS):
            pilot = components([Group(studies(rng, 1, 5, 72, 0.06, 0.15, rng.normal(0, 0.12, (1, 1, 72)))[0])])
            interval = mean_interval(studies(rng, 1, 1, 144, 0.06, 0.15, rng.normal(0, 0.12, (1, 1, 144)))[0, 0])
            hits.append(not (with_pilot(interval, pilot, "pilot") if borrow else interval).excludes(0.0))
        return float(np.mean(hits))
    return run


def wilson_near_one() -> float:
    """24 prompts x 12 samples at a true rate of 0.995: a quarter of the runs draw every sample right, where a
    Wald interval is [1, 1]."""
    rng = np.random.default_rng(14)
    rates = rng.binomial(12, 0.995, (REPS, 24)) / 12
    intervals = [mean_interval(r, bounds=(0.0, 1.0)) for r in rates]
    assert all(i.high > i.low for i in intervals) and np.mean(rates.min(axis=1) == 1.0) > 0.2
    return float(np.mean([i.low <= 0.995 <= i.high for i in intervals]))


def holm_family() -> float:
    """Six correlated contrasts, all truly 0, t tests on 47 df: 1 - the chance Holm rejects any."""
    rng = np.random.default_rng(15)
    shared = rng.normal(size=(REPS, 1))
    t = (0.5 * shared + np.sqrt(0.75) * rng.normal(size=(REPS, 6))) / np.sqrt(rng.chisquare(47, (REPS, 6)) / 47)
    p = 2 * stats.t.sf(np.abs(t), 47)
    assert np.mean(p.min(axis=1) < 0.05) > 0.15  # six unadjusted tests would reject far more often
    return 1 - float(np.mean([min(holm(row)) < 0.05 for row in p]))


def ratio_to_ceiling() -> float:
    """Diversity as a fraction of the real images' (five seeds against the seedless ceiling), linearised."""
    rng = np.random.default_rng(18)
    hits = []
    for _ in range(2000):
        prompts = rng.normal(0, 0.08, (1, 36))
        generated = studies(rng, 1, 5, 36, 0.05, 0.08, 0.6 + 0.5 * prompts)[0]
        real = 0.8 + prompts + rng.normal(0, 0.05, (1, 36))
        _, groups = linearise([generated, real], ["decoder", "real"], [True, False], lambda x: x[0] / x[1])
        hits.append(not grouped_interval(groups).excludes(0.6 / 0.8))
    return float(np.mean(hits))


def _rows(mode: str, metric: str, means: dict, seeds: int, prompts: np.ndarray, rng: np.random.Generator,
          seed_sd: float) -> list[dict]:
    shifts = rng.normal(0, seed_sd, seeds)
    return [{"mode": mode, "guidance": g, "arm": "-", "train_seed": str(s), "prompt_kind": "full", "prompt_id": p,
             "metric": metric, "value": float(mean + shifts[s] + prompts[p] + rng.normal(0, 0.05))}
            for g, mean in means.items() for s in range(seeds) for p in range(len(prompts))]


def matched_fidelity_between_modes() -> float:
    """Q1's contrast, four seeds per mode, through the report's own Sweep: each curve's fidelity where its
    diversity comes down to 75% of the real images' (0.675 of 0.9, between guidance 1 and 3); the truth is that
    reading of the population means."""
    rng = np.random.default_rng(17)
    curves = {"a": ({1.0: 0.60, 3.0: 0.80, 8.0: 0.85}, {1.0: 0.80, 3.0: 0.60, 8.0: 0.40}),
              "b": ({1.0: 0.50, 3.0: 0.70, 8.0: 0.80}, {1.0: 0.85, 3.0: 0.55, 8.0: 0.35})}
    truth = (0.60 + 0.625 * 0.20) - (0.50 + (0.675 - 0.85) / (0.55 - 0.85) * 0.20)
    hits = []
    for _ in range(1000):
        rows = [{"mode": "real", "guidance": np.nan, "arm": "-", "train_seed": "-", "prompt_kind": "full",
                 "prompt_id": p, "metric": "free_entropy", "value": float(0.9 + rng.normal(0, 0.05))}
                for p in range(24)]
        for mode, (fidelity, diversity) in curves.items():
            rows += _rows(mode, "attribute_accuracy", fidelity, 4, rng.normal(0, 0.08, 24), rng, 0.03)
            rows += _rows(mode, "free_entropy", diversity, 4, rng.normal(0, 0.08, 24), rng, 0.03)
        estimate = matched_difference(Sweep(pd.DataFrame(rows)), Line("a"), Line("b"), "free_entropy",
                                      "attribute_accuracy", 0.75)
        hits.append(not estimate.excludes(truth))
    return float(np.mean(hits))


def gain_of_gains() -> float:
    """Q6's contrast, three seeds per decoder: (a's arm − a's base) − (b's arm − b's base) in diversity, each pair
    read at the middle of the fidelity range both its curves reach (0.75 for a, 0.65 for b: halfway between the
    two guidance scales, where the diversities are their means' midpoints)."""
    rng = np.random.default_rng(19)
    lines = {("a", "arm"): ({1.0: 0.7, 3.0: 0.8}, {1.0: 0.75, 3.0: 0.65}),
             ("a", "-"): ({1.0: 0.7, 3.0: 0.8}, {1.0: 0.45, 3.0: 0.25}),
             ("b", "arm"): ({1.0: 0.6, 3.0: 0.7}, {1.0: 0.77, 3.0: 0.47}),
             ("b", "-"): ({1.0: 0.6, 3.0: 0.7}, {1.0: 0.75, 3.0: 0.45})}
    truth = (0.70 - 0.35) - (0.62 - 0.60)
    hits = []
    for _ in range(1000):
        rows = []
        for (mode, arm), (fidelity, diversity) in lines.items():
            for metric, means in (("attribute_accuracy", fidelity), ("free_entropy", diversity)):
                rows += [dict(r, arm=arm) for r in _rows(mode, metric, means, 3, rng.normal(0, 0.08, 24), rng, 0.03)]
        estimate = diversity_at_matched_fidelity(Sweep(pd.DataFrame(rows)), Line("a", "arm"), Line("b", "arm"),
                                                 "free_entropy", "attribute_accuracy", Line("a"), Line("b"))
        hits.append(not estimate.excludes(truth))
    return float(np.mean(hits))


def fid_difference_over_seeds() -> float:
    """A set metric across seeds: FID of two modes, three seeds each, every seed's FID as per-prompt jackknife
    pseudo-values, the difference read over seeds and prompts. FID depends on the sample size, so the truth is
    the expected difference at this size, from 400 independent studies."""
    from harness.metrics.distribution import leave_one_prompt_out
    from harness.metrics.intervals import pseudo_values

    rng = np.random.default_rng(20)
    prompts, k, features = 12, 4, 4

    def study() -> list[np.ndarray]:
        centres = rng.normal(0, 1, (prompts, 1, features))
        real = centres + rng.normal(0, 1, (prompts, k, features))
        tables = []
        for shift in (0.5, 0.3):
            rows = []
            for _ in range(3):
                fake = centres + shift + rng.normal(0, 0.1, (1, 1, features)) + 0.8 * rng.normal(
                    0, 1, (prompts, k, features))
                rows.append(pseudo_values(*leave_one_prompt_out(real, fake)["fid"]))
            tables.append(np.array(rows))
        return tables

    truth = float(np.mean([a.mean() - b.mean() for a, b in (study() for _ in range(400))]))
    hits = []
    for _ in range(1000):
        _, groups = linearise(study(), ["a", "b"], [True, True], lambda x: x[0] - x[1])
        hits.append(not grouped_interval(groups).excludes(truth))
    return float(np.mean(hits))


# Two or three seeds use the seed part's own degrees of freedom: valid, and wider than needed where prompts dominate.
SCENARIOS = [
    *(Scenario(f"cell, {s} seeds x 48 prompts, seed sd {seed_sd}, prompt sd {prompt_sd}", REPS,
               cell(s, seed_sd, prompt_sd), high=HIGH if s > 3 else 1.0)
      for s in (2, 3, 5, 10) for seed_sd, prompt_sd in ((0.08, 0.15), (0.02, 0.15), (0.15, 0.02), (0.0, 0.15))),
    Scenario("difference of modes, 5 seeds against 3 (unbalanced), 36 shared prompts", REPS, unequal_seeds(False)),
    Scenario("the same, old method: the missing seeds filled with the mean", REPS, unequal_seeds(True), 0.0, LOW),
    Scenario("drop within one decoder (its seed effect cancels), 4 seeds", REPS, drop_within_one_decoder),
    Scenario("one seed, 144 prompts, prompt-only interval, read as a claim about modes", REPS, one_seed(False),
             0.0, 0.75),
    # The pilot's seed variance is estimated from five seeds less its residual share, and its Satterthwaite df
    # counts both: valid, and conservative where that df comes out small.
    Scenario("one seed, 144 prompts, seed variance borrowed from a 5-seed pilot", REPS, one_seed(True), high=1.0),
    Scenario("proportion at 0.995, 24 prompts x 12 samples (Wilson)", REPS, wilson_near_one),
    Scenario("fraction of the real ceiling (a ratio), 5 seeds", 2000, ratio_to_ceiling),
    Scenario("fidelity at matched diversity, two modes of 4 seeds (Q1)", 1000, matched_fidelity_between_modes),
    Scenario("gain of gains at matched fidelity, two decoders of 3 seeds (Q6)", 1000, gain_of_gains, high=1.0),
    Scenario("FID difference of two modes, 3 seeds each (jackknife pseudo-values)", 1000, fid_difference_over_seeds,
             high=1.0),
    Scenario("Holm family of 6 under the null: 1 - family-wise error", REPS, holm_family, 0.945, 1.0),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.label)
def test_each_interval_type_covers_its_truth(scenario):
    assert scenario.low <= scenario.coverage() <= scenario.high


def test_a_true_effect_of_the_minimal_detectable_difference_is_found_four_times_in_five():
    """The detectable difference printed beside each contrast: at that true effect the level-alpha test rejects
    with 80% power (here at the strictest level of a family of six)."""
    rng = np.random.default_rng(16)
    alpha, df, se = 0.05 / 6, 23.0, 0.04
    effect = Interval(0.0, 0.0, 0.0, se=se, df=df).detectable(alpha=alpha)
    estimates = effect + se * rng.standard_t(df, REPS)
    power = np.mean(2 * stats.t.sf(np.abs(estimates) / se, df) < alpha)
    assert 0.77 <= power <= 0.83
