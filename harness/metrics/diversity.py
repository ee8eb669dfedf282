"""Within-prompt diversity: how different the K samples generated for one prompt are from each other.

Each function scores one prompt's samples; averaging over prompts (with an interval,
`harness.metrics.intervals`) is the caller's job. Read every value against the same quantity on the real images of that prompt (the ceiling), or, for
attribute entropy, against `expected_normalised_entropy` when the free attribute is uniform by construction.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import xlogy
from scipy.stats import binom, entropy
from torch import Tensor


def mean_pairwise_distance(features: Tensor) -> float:
    """Mean Euclidean distance over all pairs of a prompt's K sample features; 0 when all samples are identical.

    NaN for fewer than two samples, where spread is undefined (the interval engine skips NaN prompts).
    """
    if len(features) < 2:
        return math.nan
    return torch.pdist(features.detach().double()).mean().item()


def vendi_score(features: Tensor) -> float:
    """Vendi score (Friedman & Dieng 2023, "The Vendi Score: A Diversity Evaluation Metric for Machine
    Learning"): exp of the Shannon entropy of the eigenvalues of K/n, with K the cosine-similarity kernel.

    It reads as an effective number of distinct samples: 1 when all are identical, n when they are mutually
    orthogonal. Features must be non-zero vectors (cosine similarity is undefined otherwise).
    """
    n = len(features)
    if n == 0:
        return math.nan
    x = F.normalize(features.detach().double(), dim=1)
    # The non-zero eigenvalues of x x^T are the squared singular values of x; this avoids forming the n x n
    # kernel and is exact for any n and feature size.
    eigenvalues = torch.linalg.svdvals(x) ** 2 / n
    return math.exp(-torch.special.xlogy(eigenvalues, eigenvalues).sum().item())


def normalised_entropy(labels: Sequence[Hashable], num_values: int) -> float:
    """Shannon entropy of the empirical distribution of a categorical attribute, divided by log(num_values).

    0 when every sample has the same value, 1 when the values are exactly uniform over all `num_values`.
    This is the plug-in estimate, biased low for small K (K=8 uniform draws over 4 values average about 0.84,
    not 1), so compare it with the same estimate on the same number of real images or with
    `expected_normalised_entropy(K, num_values)`, never with 1.
    """
    if num_values < 2:
        raise ValueError(f"an attribute needs at least 2 possible values to have entropy, got {num_values}")
    counts = list(Counter(labels).values())
    if len(counts) > num_values:
        raise ValueError(f"saw {len(counts)} distinct values but num_values={num_values}")
    if not counts:
        return math.nan
    return float(entropy(counts) / math.log(num_values))


def expected_normalised_entropy(k: int, num_values: int) -> float:
    """Expected `normalised_entropy` of k independent uniform draws over num_values values (the small-K ceiling).

    By linearity the expected plug-in entropy is num_values * E[-(X/k) log(X/k)] with X ~ Binomial(k, 1/num_values),
    which is exact and cheap, unlike enumerating every count vector.
    """
    if k < 1 or num_values < 2:
        raise ValueError(f"need k >= 1 and num_values >= 2, got k={k}, num_values={num_values}")
    share = np.arange(k + 1) / k
    per_value = -np.sum(binom.pmf(np.arange(k + 1), k, 1 / num_values) * xlogy(share, share))
    return float(num_values * per_value / math.log(num_values))



def jsd_to_uniform(counts: Sequence[int], num_values: int) -> float:
    """Jensen–Shannon divergence (base 2, in [0, 1]) between the empirical distribution of `counts` (one entry per
    value seen; the unseen values count 0) and the uniform distribution over `num_values` values."""
    seen = np.asarray(counts, dtype=float)
    if len(seen) > num_values:
        raise ValueError(f"saw {len(seen)} distinct values but num_values={num_values}")
    share = np.concatenate([seen, np.zeros(num_values - len(seen))]) / seen.sum()
    middle = (share + 1.0 / num_values) / 2
    return float((-xlogy(middle, middle).sum() - (-xlogy(share, share).sum() + math.log(num_values)) / 2)
                 / math.log(2))


def expected_jsd_to_uniform(k: int, num_values: int) -> float:
    """Expected `jsd_to_uniform` of k independent uniform draws over num_values values: the plug-in estimate's
    bias on samples from the true distribution. Exact by linearity, like `expected_normalised_entropy`: each
    value's count is Binomial(k, 1/num_values)."""
    if k < 1 or num_values < 2:
        raise ValueError(f"need k >= 1 and num_values >= 2, got k={k}, num_values={num_values}")
    share = np.arange(k + 1) / k
    middle = (share + 1.0 / num_values) / 2
    weights = binom.pmf(np.arange(k + 1), k, 1 / num_values)
    per_value = np.sum(weights * (-xlogy(middle, middle) + xlogy(share, share) / 2))
    return float((num_values * per_value - math.log(num_values) / 2) / math.log(2))


def free_attribute_jsd(values: dict[str, Sequence[Hashable]], num_values: dict[str, int]) -> float:
    """How far a prompt's samples are from the world's exact distribution over the attributes its caption leaves
    free (the world draws each uniformly): per attribute, the Jensen–Shannon divergence of the samples' values to
    uniform less its expectation on as many true draws, averaged over the attributes. 0 in expectation on samples
    from the world itself, > 0 where samples collapse or favour some values; unlike entropy, spread over the wrong
    values does not score well. NaN when no attribute was read on any sample."""
    parts = [jsd_to_uniform(list(Counter(seen).values()), num_values[key])
             - expected_jsd_to_uniform(len(seen), num_values[key]) for key, seen in values.items() if seen]
    return float(np.mean(parts)) if parts else math.nan
