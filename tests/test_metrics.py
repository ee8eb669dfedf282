"""Sanity tests for harness.metrics: each checks a property the metric must have, so a wrong metric fails."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats
import pytest
import torch
from scipy import linalg
from torch import nn

from harness.line import Line
from harness.metrics.clip_score import clip_score
from harness.metrics.distribution import fid_kid, leave_one_prompt_out, prdc
from harness.metrics.intervals import (PROMPTS_ONLY, RUN, Components, Interval, crossed_interval, fill_prompts,
                                      grouped_interval, holm, linearise, mean_interval, pseudo_values, with_pilot)
from harness.metrics.diversity import (
    expected_normalised_entropy,
    mean_pairwise_distance,
    normalised_entropy,
    vendi_score,
)


def gaussian(n: int, dim: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)) * scale + shift


# ---------------------------------------------------------------- FID / KID


def test_fid_kid_same_distribution_far_below_shifted_and_rescaled():
    real = gaussian(400, 8, seed=0)
    same = fid_kid(real, gaussian(400, 8, seed=1))
    shifted = fid_kid(real, gaussian(400, 8, seed=1, shift=1.0))
    wider = fid_kid(real, gaussian(400, 8, seed=1, scale=2.0))

    assert abs(same["fid"]) < 0.3
    # A unit shift in each of 8 dims adds ||mu1 - mu2||^2 = 8; doubling the std adds 8 * (2 - 1)^2 = 8.
    assert shifted["fid"] == pytest.approx(8.0, rel=0.15)
    assert wider["fid"] == pytest.approx(8.0, rel=0.15)
    assert abs(same["kid"]) < 0.05
    assert shifted["kid"] > 20 * max(abs(same["kid"]), 0.01)
    assert wider["kid"] > 20 * max(abs(same["kid"]), 0.01)


def test_fid_matches_closed_form_so_features_pass_through_unchanged():
    real, fake = gaussian(200, 5, seed=2), gaussian(150, 5, seed=3, shift=0.5, scale=1.5)
    r, f = real.double().numpy(), fake.double().numpy()
    mu_r, mu_f, cov_r, cov_f = r.mean(0), f.mean(0), np.cov(r, rowvar=False), np.cov(f, rowvar=False)
    expected = ((mu_r - mu_f) ** 2).sum() + np.trace(cov_r + cov_f - 2 * linalg.sqrtm(cov_r @ cov_f).real)
    assert fid_kid(real, fake, kid_subsets=2)["fid"] == pytest.approx(expected, rel=1e-6)


def test_kid_subset_size_is_clamped_and_seeded():
    real, fake = gaussian(30, 4, seed=4), gaussian(20, 4, seed=5)
    first = fid_kid(real, fake, kid_subset_size=1000, kid_subsets=10, seed=7)
    assert first == fid_kid(real, fake, kid_subset_size=1000, kid_subsets=10, seed=7)
    assert math.isfinite(first["kid"])


# ---------------------------------------------------------------- precision / recall / density / coverage


def test_prdc_same_distribution_is_high():
    scores = prdc(gaussian(300, 4, seed=0), gaussian(300, 4, seed=1))
    assert scores["precision"] > 0.8 and scores["recall"] > 0.8
    assert scores["coverage"] > 0.8
    assert 0.8 < scores["density"] < 1.2


def test_prdc_collapsed_fake_is_precise_but_covers_nothing():
    real = gaussian(300, 4, seed=0)
    collapsed = real.mean(0, keepdim=True).repeat(50, 1)  # every sample at the centre of the real cloud
    scores = prdc(real, collapsed)
    assert scores["precision"] == 1.0
    assert scores["recall"] < 0.05
    assert scores["coverage"] < 0.1


def test_prdc_far_fake_has_no_precision():
    scores = prdc(gaussian(300, 4, seed=0), gaussian(300, 4, seed=1, shift=10.0))
    assert scores["precision"] < 0.02 and scores["density"] < 0.02 and scores["coverage"] < 0.02


# ---------------------------------------------------------------- within-prompt diversity


def test_identical_samples_have_no_diversity():
    same = torch.randn(1, 16).repeat(6, 1)
    assert mean_pairwise_distance(same) == 0.0
    assert vendi_score(same) == pytest.approx(1.0, abs=1e-6)


def test_orthogonal_samples_have_vendi_n_and_known_spread():
    one_hot = torch.eye(7, 12)
    assert vendi_score(one_hot) == pytest.approx(7.0, abs=1e-4)
    assert mean_pairwise_distance(one_hot) == pytest.approx(math.sqrt(2), abs=1e-9)


def test_vendi_counts_clusters():
    # Two equal groups of identical, mutually orthogonal samples behave like 2 distinct samples.
    features = torch.cat([torch.eye(4)[0].repeat(5, 1), torch.eye(4)[1].repeat(5, 1)])
    assert vendi_score(features) == pytest.approx(2.0, abs=1e-6)


def test_normalised_entropy_bounds():
    assert normalised_entropy(["red"] * 8, num_values=4) == 0.0
    assert normalised_entropy([0, 1, 2, 3, 0, 1, 2, 3], num_values=4) == pytest.approx(1.0)
    draws = np.random.default_rng(0).integers(0, 5, size=5000).tolist()
    assert normalised_entropy(draws, num_values=5) > 0.95
    with pytest.raises(ValueError):
        normalised_entropy([0, 1, 2], num_values=2)


def test_expected_normalised_entropy_matches_simulation_and_grows_with_k():
    rng = np.random.default_rng(0)
    simulated = np.mean([normalised_entropy(rng.integers(0, 4, 8).tolist(), 4) for _ in range(2000)])
    assert expected_normalised_entropy(8, 4) == pytest.approx(simulated, abs=0.01)
    assert expected_normalised_entropy(8, 4) < expected_normalised_entropy(64, 4) < 1.0


# ---------------------------------------------------------------- intervals


def test_mean_interval_is_the_student_t_interval_and_skips_nan():
    values = np.array([0.2, 0.5, np.nan, 0.9, 0.4, 0.6])
    finite = values[~np.isnan(values)]
    interval = mean_interval(values)
    expected = stats.t.interval(0.95, len(finite) - 1, loc=finite.mean(), scale=stats.sem(finite))
    assert interval.value == pytest.approx(finite.mean())
    assert (interval.low, interval.high) == pytest.approx(expected)
    assert (interval.prompts, interval.seeds, interval.seed_term) == (5, 1, PROMPTS_ONLY)
    assert math.isnan(mean_interval(np.full(3, np.nan)).value)


def test_a_proportion_gets_a_wilson_interval_never_degenerate_at_zero_or_one():
    every_prompt_right = mean_interval(np.ones(24), bounds=(0.0, 1.0))
    assert every_prompt_right.value == 1.0 and every_prompt_right.high == 1.0
    assert 0.8 < every_prompt_right.low < 0.9  # Wilson at n = 24: 0.86, not [1, 1]
    mostly_wrong = mean_interval(np.array([0.0, 0.0, 0.1, 0.0]), bounds=(0.0, 1.0))
    assert 0.0 <= mostly_wrong.low <= mostly_wrong.value < mostly_wrong.high < 1.0
    # Away from the boundary Wilson at the effective size is close to the t interval.
    middle = np.random.default_rng(0).uniform(0.3, 0.7, 200)
    t_like, wilson = mean_interval(middle), mean_interval(middle, bounds=(0.0, 1.0))
    assert wilson.low == pytest.approx(t_like.low, abs=2e-3) and wilson.high == pytest.approx(t_like.high, abs=2e-3)


def test_pseudo_values_of_a_mean_are_the_values_and_centre_on_the_estimate():
    values = np.array([1.0, 4.0, 2.0, 7.0])
    loo = np.array([(values.sum() - v) / 3 for v in values])
    np.testing.assert_allclose(pseudo_values(values.mean(), loo), values)
    # A nonlinear statistic (the variance): pseudo-values average to the statistic itself.
    loo_var = np.array([np.delete(values, i).var() for i in range(4)])
    assert pseudo_values(values.var(), loo_var).mean() == pytest.approx(values.var())


def test_crossed_interval_reads_seed_and_prompt_variance():
    rng = np.random.default_rng(0)
    prompts_only = rng.normal(0, 1, (1, 40))
    assert crossed_interval(prompts_only).se == pytest.approx(mean_interval(prompts_only[0]).se)
    # Seeds shifted far apart: the interval must widen to their spread, which a prompt-only interval ignores.
    shifted = rng.normal(0, 0.1, (4, 40)) + np.array([[-1.0], [0.0], [1.0], [2.0]])
    wide = crossed_interval(shifted)
    assert wide.seeds == 4 and wide.seed_term == RUN
    assert wide.se == pytest.approx(np.std([-1, 0, 1, 2], ddof=1) / 2, rel=0.1)
    assert wide.se > 10 * mean_interval(shifted.mean(axis=0)).se


def test_when_prompts_add_nothing_the_interval_is_the_seed_means_own_with_their_degrees_of_freedom():
    """The prompts' main effect is cut at 0; what is left is the t interval of the seed means (S - 1 degrees of
    freedom), not an interval with the residual's hundreds of degrees of freedom."""
    rng = np.random.default_rng(1)
    table = rng.normal(0, 1, (5, 48)) + rng.normal(0, 0.3, (5, 1))  # no prompt effect at all
    interval = crossed_interval(table)
    seed_means = table.mean(axis=1)
    expected = stats.t.interval(0.95, 4, loc=seed_means.mean(), scale=stats.sem(seed_means))
    assert interval.df == pytest.approx(4.0)
    assert (interval.low, interval.high) == pytest.approx(expected)


def test_fill_prompts_keeps_each_seeds_mean_and_never_invents_a_seed():
    table = np.array([[1.0, np.nan, 3.0, 5.0], [2.0, 2.0, 2.0, 6.0]])
    filled = fill_prompts(table)
    assert not np.isnan(filled).any()
    np.testing.assert_allclose(filled.mean(axis=1), [3.0, 3.0])
    with pytest.raises(ValueError, match="seed without any value"):
        fill_prompts(np.array([[1.0, 2.0], [np.nan, np.nan]]))


def test_decoders_with_different_seed_counts_are_groups_of_their_own():
    """Five seeds of one mode against three of another: no seed is filled in; the difference's variance is the
    sum of each decoder's seed-mean variance over its own seeds (here prompts add nothing)."""
    rng = np.random.default_rng(2)
    a = rng.normal(0, 0.05, (5, 30)) + rng.normal(0, 0.2, (5, 1))
    b = rng.normal(0, 0.05, (3, 30)) + rng.normal(0, 0.2, (3, 1))
    value, groups = linearise([a, b], ["a", "b"], [True, True], lambda x: x[0] - x[1])
    assert value == pytest.approx(a.mean() - b.mean())
    interval = grouped_interval(groups)
    welch = a.mean(axis=1).var(ddof=1) / 5 + b.mean(axis=1).var(ddof=1) / 3
    assert interval.se == pytest.approx(math.sqrt(welch), rel=0.05)
    assert interval.seeds == 3 and interval.seed_term == RUN
    assert 2.0 < interval.df < 7.0  # Welch-Satterthwaite over 4 and 2


def test_a_one_seed_decoder_beside_multi_seed_ones_leaves_the_seed_term_out():
    rng = np.random.default_rng(3)
    _, groups = linearise([rng.normal(size=(4, 20)), rng.normal(size=(1, 20))], ["a", "b"], [True, True],
                          lambda x: x[0] - x[1])
    assert grouped_interval(groups).seed_term == PROMPTS_ONLY


def test_paired_difference_detects_shift_but_not_noise():
    rng = np.random.default_rng(0)
    difficulty = rng.normal(0, 5, 60)  # shared by both modes: pairing must cancel it
    a = difficulty + rng.normal(0, 0.3, 60)
    shifted = difficulty + 1.0 + rng.normal(0, 0.3, 60)
    same = difficulty + rng.normal(0, 0.3, 60)
    _, groups = linearise([shifted[None], a[None]], ["s", "a"], [True, True], lambda x: x[0] - x[1])
    assert grouped_interval(groups).low > 0
    _, groups = linearise([same[None], a[None]], ["s", "a"], [True, True], lambda x: x[0] - x[1])
    assert not grouped_interval(groups).excludes(0.0)


def test_a_pilot_adds_its_seed_variance_and_degrees_of_freedom_to_a_one_seed_interval():
    one_seed = Interval(0.1, 0.08, 0.12, se=0.01, df=143, prompts=144, seeds=1)
    pilot = Components(seed=0.03 ** 2, prompt=0.01, residual=0.02, seed_df=4.0, seeds=5, prompts=72)
    borrowed = with_pilot(one_seed, pilot, "cpu")
    assert borrowed.seed_term == "pilot cpu" and borrowed.carries_seeds and not one_seed.carries_seeds
    assert borrowed.se == pytest.approx(math.hypot(0.01, 0.03))
    assert borrowed.df == pytest.approx(4.0)  # the pilot's few seeds dominate: their own degrees of freedom
    assert borrowed.low < 0.1 - 2.5 * borrowed.se and borrowed.p_value() > 100 * one_seed.p_value()
    # Planning from the same components: ten seeds and 72 prompts detect a smaller difference than one seed.
    assert pilot.detectable(10, 72) < pilot.detectable(1, 72) / 2


def test_holm_adjusts_step_down_and_counts_every_declared_contrast():
    # Sorted p 0.01, 0.02, 0.04 plus one n/a, m = 4: 0.04, 0.06, 0.08; the n/a one stays n/a but counts.
    assert holm([0.04, 0.01, np.nan, 0.02]) == pytest.approx([0.08, 0.04, np.nan, 0.06], nan_ok=True)


def test_detectable_difference_is_the_power_formula():
    e = Interval(0.1, 0.0, 0.2, se=0.05, df=1e6)
    assert e.detectable() == pytest.approx((1.959964 + 0.841621) * 0.05, rel=1e-4)
    assert Interval(0.1, 0.05, 0.15, se=0.01, df=1e6).p_value() < 1e-6


def test_p_value_without_any_variation_is_no_test_and_equivalence_needs_a_margin():
    assert math.isnan(Interval(0.2, 0.2, 0.2, se=0.0, df=10).p_value())
    assert Interval(0.0, 0.0, 0.0, se=0.0, df=10).p_value() == 1.0
    tight = Interval(0.01, -0.01, 0.03, se=0.01, df=100)
    assert tight.equivalence_p(0.1) < 1e-6 and tight.equivalence_p(0.01) > 0.4
    assert math.isnan(Interval(0.0, 0.0, 0.0, se=0.0, df=10).equivalence_p(0.1))


def test_leave_one_prompt_out_matches_recomputing_without_each_prompt():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(6, 5, 8)), rng.normal(0.3, 1.2, size=(6, 5, 8))
    out = leave_one_prompt_out(real, fake)
    keep = np.arange(6) != 2
    flat = lambda x: torch.as_tensor(x.reshape(-1, 8))  # noqa: E731
    full, without = fid_kid(flat(real), flat(fake), kid_subsets=1), fid_kid(flat(real[keep]), flat(fake[keep]),
                                                                             kid_subsets=1)
    assert out["fid"][0] == pytest.approx(full["fid"], rel=1e-6)
    assert out["fid"][1][2] == pytest.approx(without["fid"], rel=1e-6)
    assert out["kid"][0] == pytest.approx(full["kid"], rel=1e-9)  # all pairs, equal sizes: torchmetrics' KID


@pytest.mark.parametrize("ties,shape", [(False, (7, 5, 4)), (True, (7, 5, 4)), (False, (4, 2, 8))])
def test_leave_one_prompt_out_prdc_and_fid_equal_recomputing_every_deletion(ties, shape):
    # PRDC and FID update the full set for each deleted prompt rather than recompute it: every deletion must
    # give what recomputing gives, with tied distances too (collapsed samples, a duplicated prompt), and with
    # fewer samples than features (FID's other factorisation).
    rng = np.random.default_rng(1)
    prompts, _, features = shape
    real, fake = rng.normal(size=shape), rng.normal(0.3, 1.2, size=shape)
    if ties:
        fake[:, 1:3] = fake[:, :1]
        real[2] = real[3]
        real = np.round(real)
    out = leave_one_prompt_out(real, fake)
    flat = lambda x: torch.as_tensor(x.reshape(-1, features))  # noqa: E731
    for name, value in prdc(flat(real), flat(fake)).items():
        assert out[name][0] == pytest.approx(value, abs=1e-12)
    for p in range(prompts):
        keep = np.arange(prompts) != p
        expected = {**prdc(flat(real[keep]), flat(fake[keep])),
                    "fid": fid_kid(flat(real[keep]), flat(fake[keep]), kid_subsets=1)["fid"]}
        for name, value in expected.items():
            assert out[name][1][p] == pytest.approx(value, rel=1e-6, abs=1e-12), (name, p)


# ---------------------------------------------------------------- CLIP score


def test_clip_score_ranks_matching_pairs_above_mismatched():
    text = torch.nn.functional.normalize(torch.randn(6, 32, generator=torch.Generator().manual_seed(0)), dim=1)
    image = text + 0.1 * torch.randn(6, 32, generator=torch.Generator().manual_seed(1))
    matched = clip_score(image, text)
    mismatched = clip_score(image, text.roll(1, dims=0))
    assert torch.all(matched > mismatched)
    assert torch.all((0 <= mismatched) & (matched <= 100))
    assert clip_score(text, -text).eq(0).all()  # negative cosine clamps to 0


class _RecordingClip(nn.Module):
    """Stand-in open_clip model that records what the scorer feeds it."""

    def __init__(self) -> None:
        super().__init__()
        self.visual = nn.Module()
        self.visual.preprocess_cfg = {"size": 24, "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}
        self.weight = nn.Parameter(torch.ones(1))

    def encode_image(self, image: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        self.seen = image
        return image.flatten(1)[:, :4]

    def encode_text(self, text: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        return text.float()


# ---------------------------------------------------------------- per-prompt values


def test_prompts_drawn_right_count_prompts_where_most_samples_show_shape_and_colour():
    from harness.config import ShapesConfig
    from harness.data.world import ObjectSpec, Prompt, ShapesWorld
    from harness.metrics.table import Group, per_prompt_values

    world = ShapesWorld(ShapesConfig(), 16)
    prompts = [Prompt("free", (ObjectSpec(shape="circle", color="red"),)),
               Prompt("free", (ObjectSpec(shape="square", color="blue"),))]

    def reading(shape: str, color: str) -> dict:
        return {"background": "black", "objects": [{"shape": shape, "color": color, "size": "small",
                                                    "position": "center", "row": 1, "col": 1}]}

    # Prompt 0: 2 of 3 samples right (a wrong shape, then a right one); prompt 1: 1 of 3 (the colour is wrong twice).
    readings = [[reading("circle", "red"), reading("square", "red"), reading("circle", "red")],
                [reading("square", "blue"), reading("square", "red"), reading("square", "green")]]
    group = Group(Line("m"), 3.0, 0, np.arange(2), np.random.default_rng(0).normal(size=(2, 3, 4)), readings,
                  None, {}, {})
    values = per_prompt_values(group, prompts, world, None)
    np.testing.assert_allclose(values["shape_color_accuracy"], [2 / 3, 1 / 3])
    np.testing.assert_array_equal(values["shape_color_majority"], [1.0, 0.0])


def test_the_catalogue_gives_each_metric_its_range_direction_and_role():
    from harness.metrics import catalogue

    assert catalogue.metric_range("attribute_accuracy") == (0.0, 1.0)
    assert catalogue.metric_range("attention_clip@mid.0") == (0.0, 1.0)  # a layer's mass, by its kind
    assert catalogue.metric_range("vendi") == (1.0, math.inf) and catalogue.metric_range("kid") is None
    assert catalogue.lower_is_better("fid") and not catalogue.lower_is_better("precision")
    assert catalogue.FIDELITY[0] == "attribute_accuracy" and catalogue.DIVERSITY[0] == "free_entropy"
    assert catalogue.needs_probe("binding_accuracy") and not catalogue.needs_probe("clip_score")
    assert catalogue.label("free_entropy") == "free-attribute entropy" and catalogue.label("unknown") == "unknown"
    assert len(catalogue.BY_NAME) == len(catalogue.CATALOGUE)  # each name once


def test_free_attribute_jsd_is_zero_on_the_worlds_own_draws_and_positive_on_a_collapsed_set():
    """Samples drawn from the world's own distribution for each caption: the bias-corrected JSD's interval over
    prompts holds 0. The same prompts with every sample a copy of the first: clearly above 0."""
    from harness.config import ShapesConfig
    from harness.data.world import ShapesWorld
    from harness.metrics.table import Group, per_prompt_values

    world = ShapesWorld(ShapesConfig(), 16)
    rng = np.random.default_rng(5)
    prompts = [world.sample_prompt(rng) for _ in range(240)]
    prompts = [p for p in prompts if world.free_attributes(p)][:160]
    k = 12
    readings = [[scene.to_record(world.vocab.grid) for scene in world.references(p, k, seed=i)[0]]
                for i, p in enumerate(prompts)]

    def jsd(per_prompt_readings: list[list[dict]]) -> Interval:
        group = Group(Line("m"), 3.0, 0, np.arange(len(prompts)), np.zeros((len(prompts), k, 2)),
                      per_prompt_readings, None, {}, {})
        values = per_prompt_values(group, prompts, world, None)["free_attribute_jsd"]
        return crossed_interval(values[None, ~np.isnan(values)])

    true_draws = jsd(readings)
    assert true_draws.low < 0 < true_draws.high and abs(true_draws.value) < 0.02
    collapsed = jsd([[r[0]] * k for r in readings])
    assert collapsed.low > 0.2
