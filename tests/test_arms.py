"""Sampling arms: each reduces exactly to plain sampling where its paper says it should, text noise has the
covariance it was asked for, and a new arm (defined here) is sampled by the sweep with no other edit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from harness.line import Line
from harness.sampling.arms.base import Guidance, SamplingArm, VectorInputs, arm_class
from harness.sampling.arms.cads import gamma
from harness.conditioning.base import guidance_weights
from harness.conditioning.condition import Condition
from harness.decoder.diffusion import NoiseLevels, guided, make_sampler, make_train_scheduler, \
    sample

TRAIN = make_train_scheduler(1000, "squaredcos_cap_v2", "v_prediction")
LEVELS = NoiseLevels(TRAIN)


def toy_model(x: torch.Tensor, t: torch.Tensor, cond: Condition) -> torch.Tensor:
    """A conditional 'denoiser' whose prediction depends on x, t, the vector and the tokens."""
    shift = cond.vector[:, 0] + cond.tokens[:, 0, 1]  # single coordinates: CADS restores the mean and the std
    return torch.tanh(x) * (1 + t.float()[:, None, None, None] / 1000) + shift[:, None, None, None]


def toy_guidance(scale: float, seed: int = 0) -> Guidance:
    g = torch.Generator().manual_seed(1)
    cond = Condition(vector=torch.randn(4, 8, generator=g), tokens=torch.randn(4, 3, 8, generator=g))
    null = Condition(vector=torch.zeros(4, 8), tokens=torch.zeros(4, 3, 8))
    return Guidance([cond, null], guidance_weights(scale), scale, LEVELS, seed)


def run(arm: SamplingArm, scale: float) -> torch.Tensor:
    noise = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    sampler = make_sampler("dpmpp", TRAIN, 10)
    return sample(arm.model_fn(toy_model, toy_guidance(scale)), noise, sampler, precision="fp32")


def plain(scale: float) -> torch.Tensor:
    noise = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    guidance = toy_guidance(scale)
    return sample(guided(toy_model, guidance.branches, guidance.weights), noise, make_sampler("dpmpp", TRAIN, 10),
                  precision="fp32")


def test_cads_without_noise_is_plain_guidance_and_with_noise_is_not():
    cads = arm_class("cads")
    assert torch.equal(run(cads("cads", {"noise_scale": 0.0}), 3.0), plain(3.0))
    assert not torch.allclose(run(cads("cads", {}), 3.0), plain(3.0), atol=1e-3)


def test_cads_schedule_is_the_papers_piecewise_linear_gamma():
    assert [gamma(f, 0.6, 0.9) for f in (0.0, 0.6, 0.75, 0.9, 1.0)] == pytest.approx([1, 1, 0.5, 0, 0])


def test_interval_over_every_noise_level_is_plain_guidance():
    interval = arm_class("interval")
    assert torch.equal(run(interval("interval", {"sigma_low": 0.0, "sigma_high": 1e9}), 3.0), plain(3.0))
    narrow = run(interval("interval", {}), 3.0)  # the paper's (0.28, 5.42]: unguided at either end
    assert not torch.allclose(narrow, plain(3.0), atol=1e-3) and not torch.allclose(narrow, plain(1.0), atol=1e-3)
    assert torch.equal(run(interval("interval", {}), 1.0), plain(1.0))


def test_apg_without_projection_momentum_or_cap_is_plain_guidance():
    """eta 1, no momentum and no cap leave CFG's update whole: the x0 round trip must then give CFG back."""
    apg = arm_class("apg")
    assert torch.allclose(run(apg("apg", {"eta": 1.0, "momentum": 0.0, "rms_threshold": 0.0}), 3.0), plain(3.0),
                          atol=1e-5)
    assert torch.equal(run(apg("apg", {}), 1.0), plain(1.0))
    assert not torch.allclose(run(apg("apg", {}), 3.0), plain(3.0), atol=1e-3)


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_noise_levels_convert_a_prediction_to_x0_and_back(prediction):
    levels = NoiseLevels(make_train_scheduler(1000, "squaredcos_cap_v2", prediction))
    x0, noise, t = torch.rand(3, 3, 4, 4) * 2 - 1, torch.randn(3, 3, 4, 4), torch.tensor([10, 500, 990])
    scheduler = make_train_scheduler(1000, "squaredcos_cap_v2", prediction)
    x_t = scheduler.add_noise(x0, noise, t)
    target = noise if prediction == "epsilon" else scheduler.get_velocity(x0, noise, t)
    assert torch.allclose(levels.to_x0(target, x_t, t), x0, atol=1e-3)
    assert torch.allclose(levels.from_x0(x0, x_t, t), target, atol=1e-3)


def within_sampling_error(samples: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> bool:
    """Every entry of the sample mean and covariance of samples [k, d] within 4 standard errors of the asked ones
    (a covariance entry's standard error is about sqrt((s_ii s_jj + s_ij^2) / k))."""
    k = len(samples)
    got_mean, got_cov = samples.double().mean(dim=0), torch.cov(samples.T.double())
    mean_ok = ((got_mean - mean).abs() <= 4 * (cov.diag() / k).sqrt() + 1e-12).all()
    cov_ok = ((got_cov - cov).abs() <= 4 * ((cov.diag()[:, None] * cov.diag()[None, :] + cov ** 2) / k).sqrt()).all()
    return bool(mean_ok and cov_ok)


REFERENCE = torch.randn(2, 32, 6, generator=torch.Generator().manual_seed(0)) @ \
    torch.randn(2, 6, 6, generator=torch.Generator().manual_seed(1))  # two prompts, each its own covariance


def gaussian_arm_output(name: str, k: int, **params) -> torch.Tensor:
    """The image vectors [2, k, 6] a Gaussian arm gives around the fixed REFERENCE draws."""
    arm = arm_class(name)(name, {"renormalise": False, **params})
    return arm.perturb(VectorInputs(torch.zeros(2, k, 6), None, None, seed=3,
                                    reference=lambda n: REFERENCE[:, :n])).image


@pytest.mark.parametrize("name", ["prior_gaussian", "isotropic"])
def test_gaussian_arms_draw_the_asked_mean_and_covariance_and_scale_0_is_the_mean(name):
    """20000 draws per prompt at noise_scale 2: the mean of the prior's draws, and 4 times their covariance
    (prior_gaussian) or isotropic noise of 4 times their total variance (isotropic)."""
    out = gaussian_arm_output(name, 20000, noise_scale=2.0)
    for p in range(2):
        cov = torch.cov(REFERENCE[p].T.double())
        asked = 4 * (cov if name == "prior_gaussian" else cov.trace() / 6 * torch.eye(6, dtype=torch.float64))
        assert within_sampling_error(out[p], REFERENCE[p].double().mean(dim=0), asked)
    mean = REFERENCE.mean(dim=1)
    assert torch.equal(gaussian_arm_output(name, 5, noise_scale=0.0), mean[:, None].expand(2, 5, 6))
    on_sphere = arm_class(name)(name, {"noise_scale": 0.0}).perturb(
        VectorInputs(torch.zeros(2, 5, 6), None, None, seed=3, reference=lambda n: REFERENCE[:, :n])).image
    assert torch.equal(on_sphere, torch.nn.functional.normalize(mean.double(), dim=-1).float()[:, None].expand(2, 5, 6))


@pytest.mark.parametrize("name", ["prior_gaussian", "isotropic"])
def test_gaussian_arms_match_the_priors_spread_where_the_decoder_reads_it(name):
    """On the unit sphere and through a decoder's projection, the vectors spread as much as the prior's draws
    (times noise_scale^2), measured where the decoder reads them; past what the sphere allows, as much as it can."""
    from harness.sampling.arms._spread import total_variance

    # every draw from a generator of its own: the global RNG's state depends on which tests ran before
    reference = torch.nn.functional.normalize(torch.randn(1, 6, generator=torch.Generator().manual_seed(3))
                                              + 0.3 * torch.randn(3, 32, 6, generator=torch.Generator().manual_seed(4)),
                                              dim=-1)
    projection = torch.randn(6, 10, generator=torch.Generator().manual_seed(5))
    reads = projection @ projection.T  # the Gram matrix of v -> v @ projection
    spreads = []
    for scale in (0.5, 1.0, 4.0):
        arm = arm_class(name)(name, {"noise_scale": scale})
        out = arm.perturb(VectorInputs(torch.zeros(3, 4000, 6), None, None, seed=3,
                                       reference=lambda n: reference[:, :n], reads=reads)).image
        assert torch.allclose(out.norm(dim=-1), torch.ones(3, 4000), atol=1e-5)
        got, asked = total_variance(out @ projection), scale ** 2 * total_variance(reference @ projection)
        spreads.append(got)
        if scale <= 1:
            assert ((got / asked - 1).abs() < 0.08).all(), (name, scale, got / asked)
    assert (spreads[2] > spreads[1]).all() and (spreads[1] > spreads[0]).all()


def test_a_controls_noise_scales_share_their_draws_so_its_curve_is_paired():
    """prior_gaussian at scale 2 is its scale-1 vectors' offsets from the mean, doubled (same noise, same reference
    draws), whatever the arm is called."""
    inputs = VectorInputs(torch.zeros(2, 7, 6), None, None, seed=3, reference=lambda n: REFERENCE[:, :n],
                          chunk_seed=11)
    one = arm_class("prior_gaussian")("a", {"renormalise": False}).perturb(inputs).image
    two = arm_class("prior_gaussian")("b", {"renormalise": False, "noise_scale": 2.0}).perturb(inputs).image
    mean = REFERENCE.mean(dim=1, keepdim=True)
    torch.testing.assert_close(two - mean, 2 * (one - mean))
    same = VectorInputs(torch.zeros(2, 7, 6), None, None, seed=3, reference=lambda n: REFERENCE[:, :1].expand(2, n, 6),
                        chunk_seed=11)
    flat = arm_class("prior_gaussian")("a", {"renormalise": False}).perturb(same).image  # no spread: the mean
    torch.testing.assert_close(flat, REFERENCE[:, :1].expand(2, 7, 6))


def test_text_noise_has_the_covariance_of_the_prior_draws_it_was_given():
    """Noise drawn 20000 times per prompt against the sample covariance of 32 draws: within sampling error."""
    from harness.sampling.arms._spread import covariance_factor, noise

    out = noise(covariance_factor(REFERENCE), 20000, torch.Generator().manual_seed(0))
    for p in range(2):
        assert within_sampling_error(out[p], torch.zeros(6, dtype=torch.float64), torch.cov(REFERENCE[p].T.double()))


def test_rerank_keeps_the_candidate_closest_to_the_text_and_at_the_priors_best_of_is_per_sample():
    """With as many candidates as the prior's own best-of, rerank draws exactly what per_sample draws; with one,
    the prior's raw draws; with more, each kept vector is at least as close to the text vector."""
    from harness.cli import compose
    from harness.priors.diffusion import DiffusionPrior
    from harness.sampling.arms.per_sample import PerSample
    from harness.sampling.vectors import VectorSources, sampling_vectors

    torch.manual_seed(0)
    prior = DiffusionPrior(8, 50, 6, width=16, depth=1, heads=2, best_of=3, sample_steps=4).eval()
    for p in prior.parameters():
        torch.nn.init.normal_(p, std=0.2)

    def prior_sample(text, tokens, n, gen, **settings):
        return prior.sample(text, tokens, n, generator=gen, **settings)

    sources = VectorSources(torch.randint(1, 50, (5, 6)), torch.nn.functional.normalize(torch.randn(5, 8), dim=-1),
                            prior_sample, None)
    unclip = compose(["experiment=smoke"]).conditioning["unclip"]
    ids, k = [0, 2, 4], 4
    rerank = lambda c: arm_class("rerank")("rerank", {"candidates": c})  # noqa: E731
    per_sample = sampling_vectors(unclip, PerSample("per_sample"), sources, ids, k, seed=7).image
    assert torch.equal(sampling_vectors(unclip, rerank(3), sources, ids, k, seed=7).image, per_sample)
    raw = prior.sample(sources.text_vectors[ids], sources.tokens[ids], k, generator=torch.Generator().manual_seed(
        7 % (2 ** 63)), best_of=1)
    assert torch.equal(sampling_vectors(unclip, rerank(1), sources, ids, k, seed=7).image, raw)
    candidates = prior.sample(sources.text_vectors[ids], sources.tokens[ids], k * 8,
                              generator=torch.Generator().manual_seed(7), best_of=1).reshape(3, k, 8, 8)
    closeness = (candidates * sources.text_vectors[ids][:, None, None]).sum(-1)  # [P, k, 8]
    kept = sampling_vectors(unclip, rerank(8), sources, ids, k, seed=7).image
    kept_closeness = (kept * sources.text_vectors[ids][:, None]).sum(-1)
    assert torch.allclose(kept_closeness, closeness.max(dim=-1).values)  # the closest of its 8 candidates


def test_shuffled_draws_read_another_caption_of_the_same_kind():
    arm = arm_class("shuffled_draws")("shuffled_draws")
    kinds = ["free", "free", "binding", "binding", "free"]
    centres = torch.nn.functional.normalize(torch.randn(5, 8), dim=-1)
    draws = lambda n, gen, of=None: centres[of][:, None].expand(len(of), n, 8)  # noqa: E731
    out = arm.perturb(VectorInputs(torch.zeros(3, 4, 8), None, draws, seed=9, prompt_ids=[0, 2, 4], kinds=kinds))
    read = [int((centres @ out.image[i, 0]).argmax()) for i in range(3)]
    assert all(kinds[j] == kinds[i] and j != i for i, j in zip([0, 2, 4], read)), read
    assert read[1] == 3  # the only other binding prompt
    again = arm.perturb(VectorInputs(torch.zeros(3, 4, 8), None, draws, seed=9, prompt_ids=[0, 2, 4], kinds=kinds))
    assert torch.equal(out.image, again.image)  # the same partner and draws at every guidance scale


def test_text_noise_is_added_to_the_text_vectors_with_the_prior_draws_spread():
    arm = arm_class("text_noise")("text_noise", {"renormalise": False})
    text = torch.nn.functional.normalize(torch.randn(3, 1, 8), dim=-1).expand(3, 5, 8)
    centre = torch.nn.functional.normalize(torch.randn(3, 1, 8), dim=-1)
    draws = lambda n, gen: centre + 0.1 * torch.randn(3, n, 8, generator=gen)  # noqa: E731
    out = arm.perturb(VectorInputs(text, None, draws, seed=3))
    assert out.text.shape == (3, 5, 8) and out.image is None
    assert not torch.equal(out.text, text)
    assert 0.02 < float((out.text - text).std()) < 0.5  # the draws' spread (0.1 per value), not the centre's offset
    again = arm.perturb(VectorInputs(text, None, draws, seed=3))
    assert torch.equal(out.text, again.text)  # the same stream at every guidance scale


# ---------------------------------------------------------------- through the pipeline, on smoke

LAB = Path(__file__).parent / "support" / "lab"  # a researcher's own mode and arm, outside the package
OUTSIDE_MODE, OUTSIDE_ARM = "oracle_combined", "mirrored_text"


@pytest.fixture(scope="module")
def armed_sweep(tmp_path_factory):
    """A smoke run through the report with a mode of one YAML and an arm of one module and one YAML, both from
    outside the package (`hydra.searchpath`), beside shipped arms set so that they must reproduce plain sampling
    exactly, and one separate text scale."""
    from harness.runtime import pipeline
    from harness.cli import compose
    from harness.config import ArmConfig
    from harness.runtime.context import Context
    from harness.sampling.runner import load_cells
    from harness.sampling.stage import CELLS

    root = tmp_path_factory.mktemp("armed")
    cfg = compose(["experiment=smoke", f"cache_dir={root / 'cache'}", "logger.mode=disabled", "precision=fp32",
                   f"hydra.searchpath=[file://{LAB / 'conf'}]", f"conditioning=[clip_text,combined,{OUTSIDE_MODE}]",
                   f"arms=[fixed,per_sample,{OUTSIDE_ARM},prior_gaussian,isotropic,shuffled_draws]",
                   "sweep.text_guidance=[3.0]"])
    cfg.arms.update({"cads_off": ArmConfig("cads", [], {"noise_scale": 0.0}),
                     "interval_full": ArmConfig("interval", [], {"sigma_low": 0.0, "sigma_high": 1e9}),
                     "rerank_at_best_of": ArmConfig("rerank", [], {"candidates": cfg.prior.best_of})})
    ctx = pipeline.build(Context.start(cfg, run_dir=root / "run"))
    cells = {cell: data for cell, data in load_cells(ctx["sweep"].file(CELLS))}
    return cells, root / "run", ctx


def images_of(cells: dict, mode: str, arm: str, guidance: float = 3.0, text: float | None = None) -> np.ndarray:
    found = [d["images"] for c, d in sorted(cells.items(), key=lambda kv: kv[0].chunk)
             if c.line == Line(mode, arm, text_scale=text) and c.guidance == guidance]
    assert found, (mode, arm, guidance, text)
    return np.concatenate(found)


def test_a_mode_of_one_yaml_and_an_arm_of_one_module_from_outside_the_package_are_trained_sampled_reported(
        armed_sweep):
    cells, run_dir, ctx = armed_sweep
    assert ctx.decoders()[(OUTSIDE_MODE, 0)].meta["history"]  # its own decoder, trained
    lines = {c.line for c in cells}
    assert {Line(OUTSIDE_MODE), Line(OUTSIDE_MODE, ablation="clip"), Line("clip_text", OUTSIDE_ARM)} <= lines
    assert not any(line.mode != "clip_text" and line.arm == OUTSIDE_ARM for line in lines)  # text vectors only
    assert not np.array_equal(images_of(cells, "clip_text", OUTSIDE_ARM), images_of(cells, "clip_text", "-"))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["mode_tags"][OUTSIDE_MODE] == ["sequence", "image_vector", "oracle", "two_pathway"]
    assert summary["arms"][OUTSIDE_ARM] == {"module": "lab.mirrored_text", "keep": 0, "baseline": False,
                                            "modes": ["clip_text"]}
    table = pd.read_csv(run_dir / "metrics.csv")
    assert {OUTSIDE_MODE} <= set(table["mode"]) and OUTSIDE_ARM in set(table["arm"])
    mechanism = summary["answers"]["q6_mechanism"]
    assert mechanism["measured"] and f"clip_text ({OUTSIDE_ARM}) - clip_text" in mechanism["modes"]["clip_text"]
    assert (run_dir / "curves_arms_clip_text.png").is_file()


def test_shipped_arms_reduce_to_plain_sampling_exactly_in_the_sweep(armed_sweep):
    """CADS with s = 0 is plain sampling (a prior mode: from its fixed draw); guidance over every noise level is
    plain CFG; a separate text scale equal to the vector scale is the joint scale."""
    cells, _, _ = armed_sweep
    for mode, own in (("clip_text", "-"), ("combined", "fixed"), (OUTSIDE_MODE, "-")):
        assert np.array_equal(images_of(cells, mode, "cads_off"), images_of(cells, mode, own)), mode
    for mode, own in (("clip_text", "-"), ("combined", "per_sample")):
        assert np.array_equal(images_of(cells, mode, "interval_full"), images_of(cells, mode, own)), mode
    # DALL-E 2's reranking at the prior's own best-of is the prior's per-sample draws, cell for cell.
    assert np.array_equal(images_of(cells, "combined", "rerank_at_best_of"), images_of(cells, "combined", "per_sample"))
    for control in ("prior_gaussian", "isotropic", "shuffled_draws"):  # Q6's controls sample other vectors
        assert not np.array_equal(images_of(cells, "combined", control), images_of(cells, "combined", "per_sample"))
    assert np.array_equal(images_of(cells, "combined", "per_sample", 3.0, 3.0),
                          images_of(cells, "combined", "per_sample", 3.0))
    assert not np.array_equal(images_of(cells, "combined", "per_sample", 1.0, 3.0),
                              images_of(cells, "combined", "per_sample", 1.0))


def test_a_chunks_prior_draws_are_drawn_once_for_all_its_cells_and_equal_a_fresh_draw():
    """Every guidance scale and arm of a prompt chunk reads the chunk's prior stream; the sweep draws it once."""
    from harness.sampling.arms.base import generator
    from harness.sampling.arms.fixed import Fixed
    from harness.sampling.arms.per_sample import PerSample
    from harness.sampling.vectors import VectorSources, sampling_vectors
    from harness.cli import compose

    unclip = compose(["experiment=smoke"]).conditioning["unclip"]

    calls = []

    def prior_sample(text: torch.Tensor, tokens: torch.Tensor, n: int, gen: torch.Generator,
                     **settings: float | None) -> torch.Tensor:
        calls.append(n)
        return torch.randn(len(text), n, 4, generator=gen) + text[:, None, :]

    sources = VectorSources(tokens=torch.arange(18).reshape(6, 3), text_vectors=torch.randn(6, 4),
                            prior_sample=prior_sample, oracle_vectors=None)
    ids, k = [1, 4], 5
    per_sample, fixed = PerSample("per_sample"), Fixed("fixed")
    first = sampling_vectors(unclip, per_sample, sources, ids, k, seed=11)  # guidance 1's cell
    again = sampling_vectors(unclip, per_sample, sources, ids, k, seed=11)  # guidance 3's cell of the chunk
    assert calls == [k]
    fresh = prior_sample(sources.text_vectors[ids], sources.tokens[ids], k, generator(11))
    assert torch.equal(first.image, fresh) and torch.equal(again.image, fresh)
    one = sampling_vectors(unclip, fixed, sources, ids, k, seed=11)  # one draw per prompt, shared by its samples
    other_chunk = sampling_vectors(unclip, per_sample, sources, ids, k, seed=12)
    assert calls == [k, k, 1, k]
    assert torch.equal(one.image[:, 0], one.image[:, -1]) and not torch.equal(other_chunk.image, first.image)


def test_where_the_vectors_sit_near_real_image_vectors_and_far_from_them():
    """Vectors drawn among the real image vectors sit nearer the nearest one and at a higher kernel density than
    vectors from another region of the sphere (a text vector's, across the modality gap)."""
    from harness.sampling.readings import vector_readings

    gen = torch.Generator().manual_seed(0)
    centre = torch.nn.functional.normalize(torch.randn(16, generator=gen), dim=0)
    real = torch.nn.functional.normalize(centre + 0.3 * torch.randn(500, 16, generator=gen), dim=-1)
    among = torch.nn.functional.normalize(centre + 0.3 * torch.randn(2, 6, 16, generator=gen), dim=-1)
    away = torch.nn.functional.normalize(-centre + 0.3 * torch.randn(2, 6, 16, generator=gen), dim=-1)
    near, far = vector_readings(among, real), vector_readings(away, real)
    assert (near["vector_nearest_real"] < far["vector_nearest_real"]).all()
    assert (near["vector_log_density"] > far["vector_log_density"]).all()
    assert (near["prior_spread"] > 0).all() and np.isnan(vector_readings(among, None)["vector_log_density"]).all()
    same = vector_readings(among[:, :1].expand(2, 6, 16), real)
    assert np.isnan(same["prior_spread"]).all()  # every sample of a prompt reads one vector: no spread


def test_prior_guidance_draws_at_the_asked_scale_of_the_prior_and_at_its_own_scale_is_per_sample():
    from harness.cli import compose
    from harness.priors.diffusion import DiffusionPrior
    from harness.sampling.arms.per_sample import PerSample
    from harness.sampling.vectors import VectorSources, sampling_vectors

    torch.manual_seed(0)
    prior = DiffusionPrior(8, 50, 6, width=16, depth=1, heads=2, guidance=1.0, sample_steps=4).eval()
    for p in prior.parameters():
        torch.nn.init.normal_(p, std=0.2)
    sources = VectorSources(torch.randint(1, 50, (4, 6)), torch.nn.functional.normalize(torch.randn(4, 8), dim=-1),
                            lambda text, tokens, n, gen, **settings: prior.sample(text, tokens, n, generator=gen,
                                                                                   **settings), None)
    unclip = compose(["experiment=smoke"]).conditioning["unclip"]
    guided = lambda scale: arm_class("prior_guidance")("prior_guidance", {"scale": scale})  # noqa: E731
    own = sampling_vectors(unclip, PerSample("per_sample"), sources, [0, 3], 5, seed=2).image
    assert torch.equal(sampling_vectors(unclip, guided(1.0), sources, [0, 3], 5, seed=2).image, own)
    stronger = sampling_vectors(unclip, guided(4.0), sources, [0, 3], 5, seed=2).image
    expected = prior.sample(sources.text_vectors[[0, 3]], sources.tokens[[0, 3]], 5,
                            generator=torch.Generator().manual_seed(2), guidance=4.0)
    assert torch.equal(stronger, expected) and not torch.equal(stronger, own)
