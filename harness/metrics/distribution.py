"""Set-level metrics: how close a set of generated samples is to a set of real ones, in evaluator features.

Every function takes precomputed features ([N, F] tensors from the evaluator network), so the metrics do not
depend on which network produced them; the caller makes sure that network is never the conditioning CLIP.
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
import torch
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance


class _PrecomputedFeatures(nn.Module):
    """Identity "feature extractor" so torchmetrics can be fed features instead of images.

    torchmetrics calls `feature(imgs)` inside `update()` and, for FID, reads `num_features` to size its
    running sums; with a custom module it skips its own image rescaling, so features pass through untouched.
    """

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: Tensor) -> Tensor:
        return features


def _check_pair(real: Tensor, fake: Tensor, minimum: int) -> None:
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"expected [N, F] and [M, F] features, got {tuple(real.shape)} and {tuple(fake.shape)}")
    if min(len(real), len(fake)) < minimum:
        raise ValueError(f"need at least {minimum} real and fake samples, got {len(real)} and {len(fake)}")


class SetMetrics:
    """FID and KID (torchmetrics) of one real and one fake feature set, and PRDC of many selections of their rows.

    The jackknife recomputes PRDC once per deleted prompt: the pairwise distances are computed once here and
    every selection masks them (`prdc_selections`).
    """

    def __init__(self, real_features: Tensor, fake_features: Tensor, *, k: int = 3, kid_subset_size: int = 1000,
                 kid_subsets: int = 100, seed: int = 0) -> None:
        _check_pair(real_features, fake_features, minimum=2)
        self.real, self.fake = real_features.detach().double(), fake_features.detach().double()
        self.k, self.kid_subset_size, self.kid_subsets, self.seed = k, kid_subset_size, kid_subsets, seed
        self._extractor = _PrecomputedFeatures(self.real.shape[1])

    @functools.cached_property
    def _fid(self) -> FrechetInceptionDistance:
        # Built on first use: PRDC alone never needs it, and building it costs more than a small PRDC.
        return FrechetInceptionDistance(feature=self._extractor).to(self.real.device)

    # Computed on first use only: FID/KID alone never need them.
    @functools.cached_property
    def real_real(self) -> Tensor:
        return _pairwise(self.real, self.real)

    @functools.cached_property
    def fake_fake(self) -> Tensor:
        return _pairwise(self.fake, self.fake)

    @functools.cached_property
    def real_fake(self) -> Tensor:
        return _pairwise(self.real, self.fake)

    def fid_kid(self) -> dict[str, float]:
        real, fake = self.real, self.fake
        self._fid.update(real, real=True)
        self._fid.update(fake, real=False)
        kid = self._kid_metric(len(real), len(fake))
        kid.update(real, real=True)
        kid.update(fake, real=False)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            kid_mean, kid_std = kid.compute()
        return {"fid": self._fid.compute().item(), "kid": kid_mean.item(), "kid_std": kid_std.item()}

    def prdc(self) -> dict[str, float]:
        if min(len(self.real), len(self.fake)) < self.k + 1:
            raise ValueError(f"need at least {self.k + 1} real and fake samples, got {len(self.real)} and "
                             f"{len(self.fake)}")
        every = (torch.ones(1, len(self.real), dtype=torch.bool), torch.ones(1, len(self.fake), dtype=torch.bool))
        return {name: float(values[0]) for name, values in self.prdc_selections(*every).items()}

    def prdc_selections(self, keep_real: Tensor, keep_fake: Tensor, batch: int = 8) -> dict[str, Tensor]:
        """PRDC of many selections at once: `keep_real` [S, N_real] and `keep_fake` [S, N_fake] say which rows
        each selection keeps (each row at most once). Dropped rows are pushed to infinite distance, so one
        batched k-th-value finds every selection's k-NN radii; `batch` selections at a time bound the memory."""
        parts = []
        for start in range(0, len(keep_real), batch):
            parts.append(self._prdc_batch(keep_real[start:start + batch], keep_fake[start:start + batch]))
        return {name: torch.cat([p[name] for p in parts]) for name in parts[0]}

    def _prdc_batch(self, keep_real: Tensor, keep_fake: Tensor) -> dict[str, Tensor]:
        inf = torch.tensor(math.inf, dtype=self.real.dtype)

        def radii(dist: Tensor, keep: Tensor) -> Tensor:
            # Each row's smallest distance is the point to itself, so the k-th neighbour is the (k+1)-th smallest.
            masked = torch.where(keep[:, None, :], dist[None], inf)
            return masked.kthvalue(self.k + 1, dim=2).values  # [S, N]; rows not kept are never read

        real_radii, fake_radii = radii(self.real_real, keep_real), radii(self.fake_fake, keep_fake)
        pair = keep_real[:, :, None] & keep_fake[:, None, :]  # [S, N_real, N_fake]
        fake_in_real_ball = (self.real_fake[None] < real_radii[:, :, None]) & pair
        real_in_fake_ball = (self.real_fake[None] < fake_radii[:, None, :]) & pair
        n_real, n_fake = keep_real.sum(dim=1).double(), keep_fake.sum(dim=1).double()
        nearest_fake = torch.where(keep_fake[:, None, :], self.real_fake[None], inf).min(dim=2).values
        return {
            "precision": fake_in_real_ball.any(dim=1).sum(dim=1) / n_fake,
            "recall": real_in_fake_ball.any(dim=2).sum(dim=1) / n_real,
            "density": fake_in_real_ball.sum(dim=(1, 2)) / (self.k * n_fake),
            "coverage": ((nearest_fake < real_radii) & keep_real).sum(dim=1) / n_real,
        }

    def _kid_metric(self, n_real: int, n_fake: int) -> KernelInceptionDistance:
        subset = max(2, min(n_real, n_fake, self.kid_subset_size))  # the unbiased MMD divides by m * (m - 1)
        # When a subset is both whole sets, every repeat would draw the same sets: one is enough.
        subsets = 1 if n_real == n_fake == subset else self.kid_subsets
        with warnings.catch_warnings():
            # torchmetrics warns that KID buffers all features; here they are already in memory.
            warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
            return KernelInceptionDistance(feature=self._extractor, subsets=subsets,
                                           subset_size=subset).to(self.real.device)


def fid_kid(
    real_features: Tensor,
    fake_features: Tensor,
    kid_subset_size: int = 1000,
    kid_subsets: int = 100,
    seed: int = 0,
) -> dict[str, float]:
    """FID (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
    Equilibrium") and KID (Binkowski et al. 2018, "Demystifying MMD GANs"), computed by torchmetrics on
    precomputed evaluator features.

    Features are cast to float64 before torchmetrics sees them: its FID sums are float64 anyway and the result is
    returned in the input dtype. `kid_subset_size` (torchmetrics' default, 1000) is clamped to the smaller sample
    count, as KID's unbiased MMD needs equal-size real and fake subsets. `kid_std` is the spread over KID's subsets,
    not a confidence interval; use `leave_one_prompt_out` and `harness.metrics.intervals` for that. `seed` fixes KID's subset draws
    without touching the global torch RNG. FID is biased upward at small sample counts (Chong & Forsyth 2020,
    "Effectively Unbiased FID and Inception Score"), most when samples are fewer than feature dimensions; compare
    it only at equal sample counts.
    """
    return SetMetrics(real_features, fake_features, kid_subset_size=kid_subset_size, kid_subsets=kid_subsets,
                      seed=seed).fid_kid()


def _pairwise(a: Tensor, b: Tensor) -> Tensor:
    # The exact (non-matmul) path keeps distances between identical points at exactly 0, which the strict "<"
    # ball tests below rely on (a collapsed sample must have radius 0, not rounding noise).
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")


def prdc(real_features: Tensor, fake_features: Tensor, k: int = 3) -> dict[str, float]:
    """Precision, recall, density and coverage from k-nearest-neighbour balls in feature space.

    Precision and recall follow Kynkäänniemi et al. 2019 ("Improved Precision and Recall Metric for Assessing
    Generative Models"): the share of fake samples inside the union of real k-NN balls, and of real samples
    inside the union of fake k-NN balls. Density and coverage follow Naeem et al. 2020 ("Reliable Fidelity and
    Diversity Metrics for Generative Models"): density counts how many real balls contain each fake sample
    (divided by k, so about 1 when the distributions match and unbounded above), coverage is the share of real
    balls that contain at least one fake sample.
    """
    _check_pair(real_features, fake_features, minimum=k + 1)
    return SetMetrics(real_features, fake_features, k=k).prdc()


SET_METRICS = ("fid", "kid", "precision", "recall", "density", "coverage")


def leave_one_prompt_out(real: np.ndarray, fake: np.ndarray, k: int = 3) -> dict[str, tuple[float, np.ndarray]]:
    """Each set metric of fake vs real features on all prompts, and again without each prompt in turn.

    `real` is [P, K_real, F] and `fake` [P, K, F], prompt p's real images and samples in row p. Returns
    metric -> (value on all prompts, [P] values with prompt p's real and fake samples left out), the input of
    `harness.metrics.intervals.pseudo_values`: deleting a prompt never duplicates a sample, unlike resampling
    prompts with replacement, which put a duplicate at distance 0 from its copy and biased every set metric.

    FID and KID are computed here from shared sums rather than by torchmetrics, which would recompute each of
    the P + 1 selections from scratch; both agree with `fid_kid` to rounding on the full set (tests). KID is
    the unbiased MMD^2 of the cubic polynomial kernel on all pairs (no random subsets, so no subset noise).
    """
    real_t, fake_t = (torch.as_tensor(np.asarray(x), dtype=torch.float64) for x in (real, fake))
    n_prompts = real_t.shape[0]
    if n_prompts < 2 or fake_t.shape[0] != n_prompts:
        raise ValueError(f"need the same >= 2 prompts for real and fake, got {tuple(real_t.shape)} and "
                         f"{tuple(fake_t.shape)}")
    # Selection 0 keeps every prompt, selection p + 1 drops prompt p.
    keep = torch.ones(n_prompts + 1, n_prompts, dtype=torch.bool)
    keep[torch.arange(1, n_prompts + 1), torch.arange(n_prompts)] = False
    # Selections of equal size are batched: the full set, then the P deletions.
    fid = np.concatenate([_fid_selections(real_t, fake_t, keep[:1]), _fid_selections(real_t, fake_t, keep[1:])])
    kid = _kid_selections(real_t, fake_t, keep)
    columns = {"fid": fid, "kid": kid}
    # The k-NN metrics need more than k points on each side in every selection; a dataset with one real image
    # per prompt and few prompts has fewer, and then they are not computed (the table lacks them).
    if (n_prompts - 1) * min(real_t.shape[1], fake_t.shape[1]) > k:
        flat_real, flat_fake = real_t.reshape(-1, real_t.shape[-1]), fake_t.reshape(-1, fake_t.shape[-1])
        prdc_values = SetMetrics(flat_real, flat_fake, k=k).prdc_selections(
            keep.repeat_interleave(real_t.shape[1], dim=1), keep.repeat_interleave(fake_t.shape[1], dim=1))
        columns.update({name: values.numpy() for name, values in prdc_values.items()})
    return {name: (float(values[0]), np.asarray(values[1:], dtype=float)) for name, values in columns.items()}


def _centred(x: Tensor, keep: Tensor) -> tuple[Tensor, Tensor]:
    # [selections, n_kept, F] samples of each selection minus their mean, and the means.
    chosen = torch.stack([x[row].reshape(-1, x.shape[-1]) for row in keep])
    means = chosen.mean(dim=1)
    return chosen - means[:, None], means


def _fid_selections(real: Tensor, fake: Tensor, keep: Tensor) -> np.ndarray:
    """Frechet distance of each selection: |mu_r - mu_f|^2 + tr S_r + tr S_f - 2 tr (S_r S_f)^(1/2).

    With S = A^T A / (n - 1) for centred samples A, the eigenvalues of S_r S_f are the squared singular values
    of A_r A_f^T / sqrt((n_r - 1)(n_f - 1)), so the trace of the square root is their sum: exact, and an
    n x n problem rather than F x F when there are fewer samples than features."""
    a_real, mu_real = _centred(real, keep)
    a_fake, mu_fake = _centred(fake, keep)
    n_real, n_fake = a_real.shape[1], a_fake.shape[1]
    traces = a_real.square().sum(dim=(1, 2)) / (n_real - 1) + a_fake.square().sum(dim=(1, 2)) / (n_fake - 1)
    # With more samples than features, A = Q R and A_r A_f^T = Q_r (R_r R_f^T) Q_f^T: the same singular values
    # from an F x F product.
    r_real, r_fake = (torch.linalg.qr(a, mode="r").R if a.shape[1] > a.shape[2] else a for a in (a_real, a_fake))
    cross = torch.linalg.svdvals(r_real @ r_fake.transpose(1, 2)).sum(dim=1) / math.sqrt((n_real - 1) * (n_fake - 1))
    return ((mu_real - mu_fake).square().sum(dim=1) + traces - 2 * cross).numpy()


def _kid_selections(real: Tensor, fake: Tensor, keep: Tensor) -> np.ndarray:
    """Unbiased MMD^2 with the kernel (x.y / F + 1)^3 of each selection, from per-prompt block sums of the
    three kernel matrices (self-pairs left out)."""
    features = real.shape[-1]

    def block_sums(a: Tensor, b: Tensor, drop_diagonal: bool) -> Tensor:
        flat_a, flat_b = a.reshape(-1, features), b.reshape(-1, features)
        kernel = (flat_a @ flat_b.T / features + 1) ** 3
        if drop_diagonal:
            kernel.fill_diagonal_(0.0)
        return kernel.reshape(a.shape[0], a.shape[1], b.shape[0], b.shape[1]).sum(dim=(1, 3))  # [P, P]

    def kept_sum(blocks: Tensor) -> Tensor:
        weights = keep.double()
        return torch.einsum("sp,pq,sq->s", weights, blocks, weights)

    n_real = keep.sum(dim=1).double() * real.shape[1]
    n_fake = keep.sum(dim=1).double() * fake.shape[1]
    rr = kept_sum(block_sums(real, real, True)) / (n_real * (n_real - 1))
    ff = kept_sum(block_sums(fake, fake, True)) / (n_fake * (n_fake - 1))
    rf = kept_sum(block_sums(real, fake, False)) / (n_real * n_fake)
    return (rr + ff - 2 * rf).numpy()
