"""Metrics on evaluator features and attribute labels (DESIGN.md section 6); never on the conditioning CLIP."""

from harness.metrics.bootstrap import (
    Interval,
    bootstrap_ci,
    bootstrap_statistic,
    mean_over_prompts,
    paired_difference_ci,
)
from harness.metrics.clip_score import OpenClipScorer, clip_score
from harness.metrics.distribution import fid_kid, prdc
from harness.metrics.diversity import (
    expected_normalised_entropy,
    mean_pairwise_distance,
    normalised_entropy,
    vendi_score,
)

__all__ = [
    "Interval",
    "OpenClipScorer",
    "bootstrap_ci",
    "bootstrap_statistic",
    "clip_score",
    "expected_normalised_entropy",
    "fid_kid",
    "mean_over_prompts",
    "mean_pairwise_distance",
    "normalised_entropy",
    "paired_difference_ci",
    "prdc",
    "vendi_score",
]
