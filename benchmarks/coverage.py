"""Coverage of each interval type the report prints, on synthetic studies with a known truth (the population mean
over seeds and prompts): prints one row per type (repetitions, coverage, its Monte Carlo standard error) for
docs/reading-the-report.md. Seeded: the same figures on every machine.

    python benchmarks/coverage.py
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from harness.metrics.intervals import Group, components, crossed_variance, holm, mean_interval, with_pilot

REPS = 4000


def decoder(rng: np.random.Generator, reps: int, seeds: int, prompts: int, seed_sd: float, effects: np.ndarray,
            residual_sd: float = 0.1) -> np.ndarray:
    return rng.normal(0, seed_sd, (reps, seeds, 1)) + effects + rng.normal(0, residual_sd, (reps, seeds, prompts))


def covered(groups: list[Group]) -> float:
    value, variance, df, _ = crossed_variance(groups)
    return float(np.mean(np.abs(value) <= stats.t.ppf(0.975, df) * np.sqrt(variance)))


def rows() -> list[tuple[str, int, float]]:
    rng = np.random.default_rng(2026)
    out = []
    for seeds in (2, 3, 5, 10):
        for seed_sd, prompt_sd in ((0.08, 0.15), (0.15, 0.02), (0.0, 0.15)):
            table = decoder(rng, REPS, seeds, 48, seed_sd, rng.normal(0, prompt_sd, (REPS, 1, 48)))
            out.append((f"cell, {seeds} seeds x 48 prompts, seed sd {seed_sd}, prompt sd {prompt_sd}", REPS,
                        covered([Group(table)])))
    difficulty = rng.normal(0, 0.15, (REPS, 1, 36))
    a = decoder(rng, REPS, 5, 36, 0.08, difficulty + rng.normal(0, 0.05, (REPS, 1, 36)))
    b = decoder(rng, REPS, 3, 36, 0.08, difficulty + rng.normal(0, 0.05, (REPS, 1, 36)))
    out.append(("difference of modes, 5 seeds against 3 (unbalanced), 36 prompts", REPS,
                covered([Group(a), Group(-b)])))
    filled = np.concatenate([b, np.repeat(b.mean(axis=1, keepdims=True), 2, axis=1)], axis=1)
    out.append(("the same, old method: missing seeds filled with the mean", REPS, covered([Group(a - filled)])))
    # Guidance 1 minus guidance 8 of one decoder: its seed effect is in both and cancels, prompts' does not.
    prompts = rng.normal(0, 0.1, (REPS, 1, 30))
    drop = 0.5 * prompts + rng.normal(0, 0.05, (REPS, 4, 30)) - rng.normal(0, 0.05, (REPS, 4, 30))
    out.append(("drop within one decoder (seed effect shared), 4 seeds", REPS, covered([Group(drop)])))
    one_seed, borrowed = [], []
    for _ in range(1000):
        pilot = components([Group(decoder(rng, 1, 5, 72, 0.06, rng.normal(0, 0.12, (1, 1, 72)), 0.15)[0])])
        run = decoder(rng, 1, 1, 144, 0.06, rng.normal(0, 0.12, (1, 1, 144)), 0.15)[0, 0]
        interval = mean_interval(run)
        one_seed.append(not interval.excludes(0.0))
        borrowed.append(not with_pilot(interval, pilot, "pilot").excludes(0.0))
    out.append(("one seed, 144 prompts, prompt-only interval (a claim about modes)", 1000, float(np.mean(one_seed))))
    out.append(("one seed, 144 prompts, seed variance from a 5-seed pilot", 1000, float(np.mean(borrowed))))
    rates = rng.binomial(12, 0.995, (REPS, 24)) / 12
    out.append(("proportion at 0.995, 24 prompts x 12 samples, Wilson", REPS,
                float(np.mean([(i.low <= 0.995 <= i.high) for i in (mean_interval(r, bounds=(0.0, 1.0))
                                                                     for r in rates)]))))
    shared = rng.normal(size=(REPS, 1))
    t = (0.5 * shared + np.sqrt(0.75) * rng.normal(size=(REPS, 6))) / np.sqrt(rng.chisquare(47, (REPS, 6)) / 47)
    p = 2 * stats.t.sf(np.abs(t), 47)
    out.append(("Holm family of 6 under the null: 1 - family-wise error", REPS,
                1 - float(np.mean([min(holm(row)) < 0.05 for row in p]))))
    return out


def main() -> None:
    print("| interval type | repetitions | coverage | MC s.e. |")
    print("|---|---|---|---|")
    for label, reps, coverage in rows():
        print(f"| {label} | {reps} | {coverage:.3f} | {np.sqrt(coverage * (1 - coverage) / reps):.3f} |")


if __name__ == "__main__":
    main()
