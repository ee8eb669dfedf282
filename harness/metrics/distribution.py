"""Set-level metrics: how close a set of generated samples is to a set of real ones, in evaluator features.

Every function takes precomputed features ([N, F] tensors from the evaluator network), so the metrics do not
depend on which network produced them; the caller makes sure that network is never the conditioning CLIP.
"""

from __future__ import annotations

import functools
import warnings

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
    """FID, KID and PRDC of many row selections of one real and one fake feature set.

    Bootstrap intervals recompute these metrics on hundreds of resamples of the same samples. The pairwise
    distances are computed once here and every selection indexes them (a resample with a duplicated row
    sees the same zero distance a recomputation would), and the torchmetrics objects are reset rather
    than rebuilt: together about half of the metrics stage's time on a 2-core CPU.
    """

    def __init__(self, real_features: Tensor, fake_features: Tensor, *, k: int = 3, kid_subset_size: int = 1000,
                 kid_subsets: int = 100, seed: int = 0) -> None:
        _check_pair(real_features, fake_features, minimum=2)
        self.real, self.fake = real_features.detach().double(), fake_features.detach().double()
        self.k, self.kid_subset_size, self.kid_subsets, self.seed = k, kid_subset_size, kid_subsets, seed
        extractor = _PrecomputedFeatures(self.real.shape[1])
        self._fid = FrechetInceptionDistance(feature=extractor).to(self.real.device)
        self._kid: dict[tuple[int, int], KernelInceptionDistance] = {}  # by (subsets, subset size)
        self._extractor = extractor

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

    def fid_kid(self, real_rows: Tensor | None = None, fake_rows: Tensor | None = None) -> dict[str, float]:
        real, fake = self._select(real_rows, fake_rows)
        self._fid.reset()
        self._fid.update(real, real=True)
        self._fid.update(fake, real=False)
        kid = self._kid_metric(len(real), len(fake))
        kid.reset()
        kid.update(real, real=True)
        kid.update(fake, real=False)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            kid_mean, kid_std = kid.compute()
        return {"fid": self._fid.compute().item(), "kid": kid_mean.item(), "kid_std": kid_std.item()}

    def prdc(self, real_rows: Tensor | None = None, fake_rows: Tensor | None = None) -> dict[str, float]:
        real_rows = torch.arange(len(self.real)) if real_rows is None else torch.as_tensor(real_rows)
        fake_rows = torch.arange(len(self.fake)) if fake_rows is None else torch.as_tensor(fake_rows)
        if min(len(real_rows), len(fake_rows)) < self.k + 1:
            raise ValueError(f"need at least {self.k + 1} real and fake samples, got {len(real_rows)} and "
                             f"{len(fake_rows)}")
        # Each row's smallest distance is the point to itself, so the k-th neighbour is the (k+1)-th smallest.
        real_radii = self.real_real[real_rows][:, real_rows].kthvalue(self.k + 1, dim=1).values
        fake_radii = self.fake_fake[fake_rows][:, fake_rows].kthvalue(self.k + 1, dim=1).values
        dist = self.real_fake[real_rows][:, fake_rows]  # [N_real, N_fake]
        fake_in_real_ball = dist < real_radii[:, None]
        real_in_fake_ball = dist < fake_radii[None, :]
        return {
            "precision": fake_in_real_ball.any(dim=0).double().mean().item(),
            "recall": real_in_fake_ball.any(dim=1).double().mean().item(),
            "density": fake_in_real_ball.double().sum().item() / (self.k * len(fake_rows)),
            "coverage": (dist.min(dim=1).values < real_radii).double().mean().item(),
        }

    def _select(self, real_rows: Tensor | None, fake_rows: Tensor | None) -> tuple[Tensor, Tensor]:
        real = self.real if real_rows is None else self.real[torch.as_tensor(real_rows)]
        fake = self.fake if fake_rows is None else self.fake[torch.as_tensor(fake_rows)]
        if min(len(real), len(fake)) < 2:
            raise ValueError(f"need at least 2 real and fake samples, got {len(real)} and {len(fake)}")
        return real, fake

    def _kid_metric(self, n_real: int, n_fake: int) -> KernelInceptionDistance:
        subset = max(2, min(n_real, n_fake, self.kid_subset_size))  # the unbiased MMD divides by m * (m - 1)
        # When a subset is both whole sets, every repeat would draw the same sets: one is enough.
        subsets = 1 if n_real == n_fake == subset else self.kid_subsets
        if (subsets, subset) not in self._kid:
            with warnings.catch_warnings():
                # torchmetrics warns that KID buffers all features; here they are already in memory.
                warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
                self._kid[(subsets, subset)] = KernelInceptionDistance(
                    feature=self._extractor, subsets=subsets, subset_size=subset).to(self.real.device)
        return self._kid[(subsets, subset)]


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
    not a confidence interval; use `bootstrap_statistic` over prompts for that. `seed` fixes KID's subset draws
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
