"""Priors (DALL-E 2 / unCLIP diffusion prior; identity, mean_shift, linear baselines) on synthetic pairs."""

from __future__ import annotations

import dataclasses
import io

import pytest
import torch
import torch.nn.functional as F

from harness.config import PriorConfig, TrainConfig
from harness.priors import PRIORS, Prior, build_prior, prior_quality

DIM, VOCAB, LENGTH, N = 16, 20, 6, 256
TINY_DIFFUSION = dict(width=32, depth=2, heads=2, sample_steps=8)
RECIPE = dataclasses.replace(PriorConfig().train, batch_size=64, lr=2e-3, warmup_steps=15, seed=0)
FIT = dict(progress=False, device="cpu")


def recipe(steps: int) -> TrainConfig:
    return dataclasses.replace(RECIPE, steps=steps)


def unit(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=-1)


@pytest.fixture(scope="module")
def pairs():
    """Text vectors, caption tokens (some fully padded) and image = normalise(text @ A + b): a fixed map."""
    g = torch.Generator().manual_seed(0)
    text = unit(torch.randn(N, DIM, generator=g))
    tokens = torch.randint(1, VOCAB, (N, LENGTH), generator=g)
    tokens[:, 4:] = 0
    tokens[:8] = 0  # empty captions: every key is padding, which must not produce NaN
    matrix, offset = torch.randn(DIM, DIM, generator=g), torch.randn(DIM, generator=g)
    return text, tokens, unit(text @ matrix + offset)


def make(name: str) -> Prior:
    return build_prior(name, DIM, VOCAB, LENGTH, **(TINY_DIFFUSION if name == "diffusion" else {}))


def fitted(name: str, pairs, steps: int = 5) -> Prior:
    prior = make(name)
    prior.fit(*pairs, recipe(steps), **FIT)
    return prior


def mean_cosine(prior: Prior, pairs) -> float:
    text, tokens, image = pairs
    return (prior.sample(text, tokens)[:, 0] * image).sum(-1).mean().item()


@pytest.fixture(scope="module")
def trained_diffusion(pairs, precision):
    prior = fitted("diffusion", pairs, steps=300)
    prior.precision = precision  # what the numerics test below compares at (conftest's --precision)
    return prior


@pytest.mark.parametrize("name", sorted(PRIORS))
def test_samples_are_unit_norm_with_shape(name, pairs):
    text, tokens, _ = pairs
    out = fitted(name, pairs).sample(text[:10], tokens[:10], n=3, generator=torch.Generator().manual_seed(0))
    assert out.shape == (10, 3, DIM)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(10, 3))


def test_identity_returns_the_text_vector(pairs):
    text, tokens, _ = pairs
    out = fitted("identity", pairs).sample(text, tokens, n=2)
    torch.testing.assert_close(out, text[:, None].expand(-1, 2, -1))


def test_mean_shift_recovers_a_constant_gap():
    g = torch.Generator().manual_seed(1)
    text = unit(torch.randn(N, DIM, generator=g))
    tokens = torch.randint(1, VOCAB, (N, LENGTH), generator=g)
    gap_pairs = (text, tokens, unit(text + 1.5 * unit(torch.randn(DIM, generator=g))))
    shifted = mean_cosine(fitted("mean_shift", gap_pairs), gap_pairs)
    identity = mean_cosine(make("identity"), gap_pairs)
    assert shifted > 0.9  # not 1: renormalising after the shift bends the gap differently per caption
    assert shifted > identity + 0.3


def test_linear_recovers_an_affine_map(pairs):
    prior = build_prior("linear", DIM, VOCAB, LENGTH, alpha=1e-3)
    stats = prior.fit(*pairs, recipe(0), **FIT)
    linear, identity = mean_cosine(prior, pairs), mean_cosine(make("identity"), pairs)
    assert stats["train_cosine"] > 0.99 and linear > 0.99
    assert linear > identity + 0.5


def test_linear_alpha_shrinks_towards_the_mean(pairs):
    """Huge ridge penalty: the weight vanishes and every caption gets the mean image direction."""
    text, tokens, image = pairs
    prior = build_prior("linear", DIM, VOCAB, LENGTH, alpha=1e9)
    prior.fit(*pairs, recipe(0), **FIT)
    out = prior.sample(text, tokens)[:, 0]
    torch.testing.assert_close(out, unit(image.mean(0)).expand_as(out), atol=1e-3, rtol=0)


def test_diffusion_prior_learns_the_map(trained_diffusion, pairs):
    diffusion, identity = mean_cosine(trained_diffusion, pairs), mean_cosine(make("identity"), pairs)
    assert diffusion > 0.8
    assert diffusion > identity + 0.5


@pytest.mark.numerics
def test_diffusion_caption_ignores_its_padding_and_the_rest_of_the_batch(trained_diffusion, pairs, precision):
    """Padding is masked and all-padding columns are cut, so a short caption predicts the same on its own as
    next to a longer one (which keeps more columns): to float32 rounding, or to bf16's (8 bits of mantissa,
    0.004 apart measured on an AVX512-BF16 CPU, where the two batches take different kernels)."""
    text, tokens, _ = pairs
    short, long = tokens[8:9].clone(), tokens[9:10].clone()
    short[:, 2:] = 0
    noised, timesteps, drop = torch.randn(2, DIM), torch.tensor([500, 500]), torch.tensor([False, False])
    alone = trained_diffusion.denoise(noised[:1], timesteps[:1], text[8:9], short, drop[:1])
    batched = trained_diffusion.denoise(noised, timesteps, text[8:10], torch.cat([short, long]), drop)
    tolerance = 1e-5 if precision == "fp32" else 2e-2
    torch.testing.assert_close(batched[:1], alone, atol=tolerance, rtol=tolerance)


def test_diffusion_draws_differ_identity_draws_do_not(pairs):
    text, tokens, _ = pairs
    draws = make("diffusion").sample(text[:4], tokens[:4], n=2, generator=torch.Generator().manual_seed(0))
    assert (draws[:, 0] - draws[:, 1]).norm(dim=-1).min() > 1e-2
    same = make("identity").sample(text[:4], tokens[:4], n=2)
    assert torch.equal(same[:, 0], same[:, 1])


def test_best_of_keeps_the_candidate_closest_to_the_text(trained_diffusion, pairs):
    """best_of=2, n=1 draws the same noise rows as best_of=1, n=2, so it must pick the better of those two."""
    text, tokens, _ = pairs
    candidates = trained_diffusion.sample(text[:12], tokens[:12], n=2, generator=torch.Generator().manual_seed(3))
    trained_diffusion.best_of = 2
    try:
        chosen = trained_diffusion.sample(text[:12], tokens[:12], n=1, generator=torch.Generator().manual_seed(3))
    finally:
        trained_diffusion.best_of = 1
    best = (candidates * text[:12, None]).sum(-1).argmax(-1)
    torch.testing.assert_close(chosen[:, 0], candidates[torch.arange(12), best])


def test_guidance_changes_samples_and_stays_unit_norm(trained_diffusion, pairs):
    text, tokens, _ = pairs
    plain = trained_diffusion.sample(text[:8], tokens[:8], generator=torch.Generator().manual_seed(0))
    trained_diffusion.guidance = 3.0
    try:
        guided = trained_diffusion.sample(text[:8], tokens[:8], generator=torch.Generator().manual_seed(0))
    finally:
        trained_diffusion.guidance = 1.0
    torch.testing.assert_close(guided.norm(dim=-1), torch.ones(8, 1))
    assert not torch.allclose(guided, plain, atol=1e-4)


def test_diffusion_runs_under_bf16_autocast(pairs):
    """Forced bf16 (what a GPU gets from `precision=auto`): mixed dtypes must still train and sample."""
    text, tokens, _ = pairs
    prior = build_prior("diffusion", DIM, VOCAB, LENGTH, precision="bf16", guidance=2.0, **TINY_DIFFUSION)
    assert prior.fit(*pairs, recipe(3), **FIT)["final_loss"] > 0
    out = prior.sample(text[:4], tokens[:4], n=2, generator=torch.Generator().manual_seed(0))
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(4, 2))


def test_diffusion_fit_is_deterministic_given_seed(pairs):
    first, second = fitted("diffusion", pairs), fitted("diffusion", pairs)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("name", sorted(PRIORS))
def test_state_dict_round_trip_reproduces_samples(name, pairs):
    text, tokens, _ = pairs
    prior = fitted(name, pairs)
    buffer = io.BytesIO()
    torch.save(prior.state_dict(), buffer)
    buffer.seek(0)
    reloaded = make(name)
    reloaded.load_state_dict(torch.load(buffer, weights_only=True))
    before = prior.sample(text[:6], tokens[:6], n=2, generator=torch.Generator().manual_seed(5))
    after = reloaded.sample(text[:6], tokens[:6], n=2, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(after, before, atol=0, rtol=0)


def test_unknown_prior_names_itself_and_the_choices():
    with pytest.raises(ValueError, match="no_such_prior.*diffusion"):
        build_prior("no_such_prior", DIM, VOCAB, LENGTH)


class _Oracle(Prior):
    """Returns the true image vector of each caption (looked up by its text vector)."""

    def __init__(self, text: torch.Tensor, image: torch.Tensor) -> None:
        super().__init__(DIM, VOCAB, LENGTH)
        self.text, self.image = text, image

    def fit(self, *args, **kwargs) -> dict[str, float]:
        return {}

    def sample(self, text_vectors, text_tokens, n=1, generator=None):
        index = (text_vectors @ self.text.T).argmax(-1)
        return self.image[index, None].expand(-1, n, -1)


def test_prior_quality_of_an_oracle_is_perfect(pairs):
    text, tokens, image = pairs
    scores = prior_quality(_Oracle(text, image), text, tokens, image, image, torch.eye(N, dtype=torch.bool),
                           n=2, batch_size=100)
    assert scores == pytest.approx({"cosine": 1.0, "retrieval_top1": 1.0, "draw_cosine": 1.0}, abs=1e-5)


def test_prior_quality_retrieval_reads_the_satisfies_matrix(pairs):
    """Identity retrieves some bank image; if no bank image satisfies any caption, retrieval must be 0."""
    text, tokens, image = pairs
    nothing = torch.zeros(N, N, dtype=torch.bool)
    scores = prior_quality(make("identity"), text, tokens, image, image, nothing)
    assert scores["retrieval_top1"] == 0.0
    assert scores["cosine"] == pytest.approx(mean_cosine(make("identity"), pairs), abs=1e-5)
    with pytest.raises(ValueError, match="satisfies"):
        prior_quality(make("identity"), text, tokens, image, image, nothing[:, :3])
