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

    The jackknife needs PRDC once per deleted prompt: the pairwise distances are computed once here and
    `prdc_without` updates the full set's k-NN radii and ball counts for each deletion.
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
        none = torch.zeros(len(self.real), dtype=torch.long), torch.zeros(len(self.fake), dtype=torch.long)
        return {name: float(values[0]) for name, values in self.prdc_without(*none, torch.tensor([-1])).items()}

    def prdc_without(self, real_groups: Tensor, fake_groups: Tensor, drop: Tensor) -> dict[str, Tensor]:
        """PRDC of selections that each leave out one group of rows: `real_groups` [N_real] and `fake_groups`
        [N_fake] label the rows, selection s drops the rows labelled `drop[s]`; `drop[0]` must be -1 (drop none):
        the others are computed as changes to it.

        Exact, and far cheaper than recomputing each selection: leaving out a group of at most m rows moves a
        point's k-NN radius only when one of its k nearest neighbours was in it, so each radius is the (k+1)-th
        kept entry of the point's k + 1 + m nearest, and each ball count is the full set's, less the dropped
        balls, corrected only for the balls whose radius moved."""
        if int(drop[0]) != -1:
            raise ValueError(f"drop[0] must be -1 (the full set), got {int(drop[0])}")
        real_radii = _kth_kept(self.real_real, real_groups, drop, self.k + 1)  # the point itself comes first
        fake_radii = _kth_kept(self.fake_fake, fake_groups, drop, self.k + 1)
        keep_real = real_groups[None] != drop[:, None]  # [S, N_real]
        keep_fake = fake_groups[None] != drop[:, None]
        n_real, n_fake = keep_real.sum(dim=1).double(), keep_fake.sum(dim=1).double()
        # Per selection and fake sample, the kept real balls that hold it; per real sample, the kept fake balls.
        in_real_balls = _ball_counts(self.real_fake, real_radii, real_groups, drop) * keep_fake
        in_fake_balls = _ball_counts(self.real_fake.T, fake_radii, fake_groups, drop) * keep_real
        nearest_fake = _kth_kept(self.real_fake, fake_groups, drop, 1)
        return {
            "precision": (in_real_balls > 0).sum(dim=1) / n_fake,
            "recall": (in_fake_balls > 0).sum(dim=1) / n_real,
            "density": in_real_balls.sum(dim=1) / (self.k * n_fake),
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


def _kth_kept(dist: Tensor, groups: Tensor, drop: Tensor, rank: int) -> Tensor:
    """[S, N_rows]: each row's `rank`-th smallest distance to the columns that selection s keeps (the columns'
    labels are `groups`; s drops those labelled `drop[s]`). Ties count with multiplicity, as a sort would."""
    dropped = drop[drop >= 0]
    largest_drop = int(torch.bincount(groups)[dropped].max()) if len(dropped) else 0
    nearest, index = dist.topk(min(rank + largest_drop, dist.shape[1]), dim=1, largest=False)  # sorted
    kept = groups[index][None] != drop[:, None, None]  # [S, N_rows, candidates]
    # The first candidate at which `rank` kept columns have been seen: no dropped group can push it further.
    position = ((kept.cumsum(dim=2) == rank) & kept).byte().argmax(dim=2)
    return nearest.gather(1, position.T).T


def _ball_counts(dist: Tensor, radii: Tensor, centre_groups: Tensor, drop: Tensor) -> Tensor:
    """[S, N_points]: how many kept centres' balls (radii [S, N_centres]) hold each point, `dist` being
    [N_centres, N_points]. Start from the full set's counts, take away the dropped group's balls, then redo the
    few balls whose radius the drop moved."""
    full = radii[0]  # selection 0 drops nothing
    # float64: counts summed over every point stay exact integers far beyond float32's 2^24
    inside = (dist < full[:, None]).double()
    dropped = (centre_groups[None] == drop[:, None]).double()  # [S, N_centres]
    counts = inside.sum(dim=0)[None] - dropped @ inside
    selection, centre = torch.nonzero((radii != full[None]) & (dropped == 0), as_tuple=True)
    if len(selection):
        redone = (dist[centre] < radii[selection, centre, None]).double() - inside[centre]
        counts.index_add_(0, selection, redone)
    return counts


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
        prompt_of = lambda x: torch.arange(n_prompts).repeat_interleave(x.shape[1])  # noqa: E731
        prdc_values = SetMetrics(flat_real, flat_fake, k=k).prdc_without(
            prompt_of(real_t), prompt_of(fake_t), torch.arange(-1, n_prompts))
        columns.update({name: values.numpy() for name, values in prdc_values.items()})
    return {name: (float(values[0]), np.asarray(values[1:], dtype=float)) for name, values in columns.items()}


def _centred(x: Tensor, keep: Tensor) -> tuple[Tensor, Tensor]:
    # [selections, n_kept, F] samples of each selection minus their mean, and the means.
    chosen = torch.stack([x[row].reshape(-1, x.shape[-1]) for row in keep])
    means = chosen.mean(dim=1)
    return chosen - means[:, None], means


def _moments(x: Tensor, keep: Tensor) -> tuple[Tensor, Tensor, int]:
    """Per selection of prompts (`keep` [S, P], all of one size) of samples x [P, K, F]: the mean [S, F], a factor
    B [S, m, F] whose B^T B is the centred samples' A^T A, and the sample count n.

    With fewer samples than features B is A itself (an n x n problem below). Otherwise B is the symmetric square
    root of the selection's centred Gram matrix, which per-prompt sums give without a pass over the samples per
    selection (a QR of each selection's samples cost 7x more at 144 prompts)."""
    n = int(keep[0].sum()) * x.shape[1]
    if n <= x.shape[-1]:
        a, means = _centred(x, keep)
        return means, a, n
    shift = x.mean(dim=(0, 1))  # moments about the overall mean: no digits lost to cancellation
    x = x - shift
    weights = keep.double()
    sums = weights @ x.sum(dim=1)  # [S, F]
    gram = torch.einsum("sp,pfg->sfg", weights, torch.einsum("pkf,pkg->pfg", x, x))
    centred = gram - sums[:, :, None] * sums[:, None, :] / n
    eigenvalues, vectors = torch.linalg.eigh(centred)
    root = (vectors * eigenvalues.clamp(min=0).sqrt()[:, None, :]) @ vectors.transpose(1, 2)
    return shift + sums / n, root, n


def _fid_selections(real: Tensor, fake: Tensor, keep: Tensor) -> np.ndarray:
    """Frechet distance of each selection: |mu_r - mu_f|^2 + tr S_r + tr S_f - 2 tr (S_r S_f)^(1/2).

    With S = A^T A / (n - 1) for centred samples A, the eigenvalues of S_r S_f are the squared singular values
    of A_r A_f^T / sqrt((n_r - 1)(n_f - 1)), so the trace of the square root is their sum. Any factors B with
    B^T B = A^T A give the same singular values (`_moments` picks the smaller), and tr S = |B|^2 / (n - 1)."""
    mu_real, b_real, n_real = _moments(real, keep)
    mu_fake, b_fake, n_fake = _moments(fake, keep)
    traces = b_real.square().sum(dim=(1, 2)) / (n_real - 1) + b_fake.square().sum(dim=(1, 2)) / (n_fake - 1)
    cross = torch.linalg.svdvals(b_real @ b_fake.transpose(1, 2)).sum(dim=1) / math.sqrt((n_real - 1) * (n_fake - 1))
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
