import pytest
import torch

from harness.conditioning.base import guidance_weights
from harness.conditioning.condition import Condition
from harness.decoder.diffusion import (
    SAMPLERS,
    diffusion_loss,
    guided,
    make_sampler,
    make_train_scheduler,
    paired_noise,
    sample,
    step_generators,
)
from harness.decoder.unet import UNet
from harness.runtime.device import autocast

SHAPE = (3, 8, 8)


def tiny_unet(randomise_zero_init: bool = True) -> UNet:
    torch.manual_seed(0)
    unet = UNet(resolution=8, width=16, channel_mults=(1, 2), num_res_blocks=1, attention_resolutions=(4,),
                heads=2, ctx_dim=8)
    if randomise_zero_init:  # a fresh UNet outputs exactly 0, which would make every guidance test trivial
        with torch.no_grad():
            for p in unet.parameters():
                if not p.any():
                    p.normal_(std=0.2)
    return unet


def branches(batch: int = 2) -> tuple[Condition, Condition]:
    g = torch.Generator().manual_seed(3)
    groups = (("clip", 1), ("text", 2))
    cond = Condition(vector=torch.randn(batch, 64, generator=g), tokens=torch.randn(batch, 3, 8, generator=g),
                     token_groups=groups)
    null = Condition(vector=torch.zeros(batch, 64), tokens=torch.zeros(batch, 3, 8),
                     mask=torch.zeros(batch, 3, dtype=torch.bool), token_groups=groups)
    return cond, null


# ---------------------------------------------------------------------------- training


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_loss_targets_noise_or_velocity(prediction_type):
    """An oracle that knows x0 recovers the right target from x_t, so its loss must vanish."""
    scheduler = make_train_scheduler(1000, "linear", prediction_type)
    x0 = torch.rand(4, *SHAPE) * 2 - 1
    abar = scheduler.alphas_cumprod

    def oracle(x_t, t):
        a, s = abar[t].sqrt()[:, None, None, None], (1 - abar[t]).sqrt()[:, None, None, None]
        eps = (x_t - a * x0) / s
        return eps if prediction_type == "epsilon" else a * eps - s * x0

    assert diffusion_loss(oracle, x0, scheduler, torch.Generator().manual_seed(0)) < 1e-6
    assert diffusion_loss(lambda x_t, t: torch.zeros_like(x_t), x0, scheduler) > 0.1


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_min_snr_weights_each_sample_by_its_clipped_snr(prediction_type):
    """Min-SNR: a sample's squared error counts min(SNR, gamma)/SNR (epsilon) or /(SNR+1) (velocity)."""
    scheduler = make_train_scheduler(1000, "squaredcos_cap_v2", prediction_type)
    x0 = torch.rand(64, *SHAPE) * 2 - 1
    gamma, draws = 5.0, torch.Generator().manual_seed(3)
    t = torch.randint(0, 1000, (64,), generator=draws)  # the timesteps the loss will draw with the same seed
    snr = scheduler.alphas_cumprod[t] / (1 - scheduler.alphas_cumprod[t])
    weights = snr.clamp(max=gamma) / (snr if prediction_type == "epsilon" else snr + 1)

    def predict_target_plus_one(x_t, t):
        noise = (x_t - scheduler.alphas_cumprod[t].sqrt()[:, None, None, None] * x0) / \
            (1 - scheduler.alphas_cumprod[t]).sqrt()[:, None, None, None]
        target = noise if prediction_type == "epsilon" else scheduler.get_velocity(x0, noise, t)
        return target + 1.0

    loss = diffusion_loss(predict_target_plus_one, x0, scheduler, torch.Generator().manual_seed(3), gamma)
    assert loss.item() == pytest.approx(weights.mean().item(), rel=1e-3)
    assert weights.min() < 0.5 < weights.max()  # the weighting is not a constant in disguise


def test_unknown_prediction_type_raises():
    with pytest.raises(ValueError, match="sample"):
        make_train_scheduler(1000, "linear", "sample")


def test_tiny_unet_overfits_one_image():
    unet = tiny_unet(randomise_zero_init=False)
    scheduler = make_train_scheduler(1000, "squaredcos_cap_v2", "epsilon")
    image = torch.linspace(-1, 1, 64).reshape(1, 1, 8, 8).expand(16, 3, 8, 8)
    model_fn = lambda x_t, t: unet(x_t, t, Condition())  # noqa: E731

    def held_out_loss() -> float:
        with torch.no_grad():  # the same timesteps and noise before and after training
            return diffusion_loss(model_fn, image, scheduler, torch.Generator().manual_seed(123)).item()

    before = held_out_loss()
    opt = torch.optim.Adam(unet.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        opt.zero_grad()
        diffusion_loss(model_fn, image, scheduler, gen).backward()
        opt.step()
    assert held_out_loss() < 0.6 * before


# ---------------------------------------------------------------------------- samplers


def test_samplers_share_the_training_schedule():
    train = make_train_scheduler(100, "linear", "v_prediction")
    for name in SAMPLERS:
        sampler = make_sampler(name, train, steps=5)
        assert sampler.config.prediction_type == "v_prediction"
        assert len(sampler.timesteps) == 5
        assert int(sampler.timesteps[0]) == 99  # starts from pure noise, not from t=80


def test_unknown_sampler_names_it_and_the_choices():
    with pytest.raises(ValueError, match="euler.*ddim.*dpmpp"):
        make_sampler("euler", make_train_scheduler(100, "linear", "epsilon"), steps=5)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_sampler_runs_guided(name):
    unet = tiny_unet().eval()
    cond, null = branches()
    sampler = make_sampler(name, make_train_scheduler(100, "linear", "epsilon"), steps=3)
    noise = paired_noise(0, [0, 1], [0, 0], SHAPE)
    out = sample(guided(unet, [cond, null], guidance_weights(3.0)), noise, sampler,
                 generators=step_generators(0, [0, 1], [0, 0]))
    assert out.shape == noise.shape
    assert torch.isfinite(out).all() and out.abs().max() <= 1.0


def test_reused_multistep_sampler_repeats_itself():
    """DPM-Solver keeps a history of model outputs; a second run must not start from the first's."""
    sampler = make_sampler("dpmpp", make_train_scheduler(100, "linear", "epsilon"), steps=4)
    model_fn = lambda x_t, t: 0.5 * x_t  # noqa: E731
    noise = paired_noise(0, [0], [0], SHAPE)
    torch.testing.assert_close(sample(model_fn, noise, sampler), sample(model_fn, noise, sampler), rtol=0, atol=0)


# ---------------------------------------------------------------------------- paired noise


def test_paired_noise_depends_only_on_seed_prompt_and_sample():
    a = paired_noise(7, [0, 0, 3], [0, 1, 2], SHAPE)
    b = paired_noise(7, torch.tensor([3, 5, 0]), torch.tensor([2, 0, 1]), SHAPE)
    assert a.shape == (3, *SHAPE)
    torch.testing.assert_close(a[2], b[0], rtol=0, atol=0)  # (3, 2) in another batch, at another position
    torch.testing.assert_close(a[1], b[2], rtol=0, atol=0)  # (0, 1)
    assert not torch.allclose(a[0], a[1])  # another sample of the same prompt
    assert not torch.allclose(a[0], paired_noise(8, [0], [0], SHAPE)[0])  # another seed


def test_ddpm_trajectory_does_not_depend_on_batch_neighbours():
    sampler = make_sampler("ddpm", make_train_scheduler(100, "linear", "epsilon"), steps=4)
    model_fn = lambda x_t, t: 0.1 * x_t  # noqa: E731 (per-sample, so only the sampler's noise couples rows)

    def run(prompts, samples):
        return sample(model_fn, paired_noise(1, prompts, samples, SHAPE), sampler,
                      generators=step_generators(1, prompts, samples))

    first, second = run([0, 4], [1, 0]), run([9, 0], [9, 1])
    torch.testing.assert_close(first[0], second[1], rtol=0, atol=0)
    assert not torch.allclose(first[1], second[0])


# ---------------------------------------------------------------------------- guidance


def test_guidance_weights_forms():
    assert guidance_weights(1.0) == [1.0, 0.0]
    assert guidance_weights(4.0) == [4.0, -3.0]
    assert guidance_weights(vector_scale=3.0, text_scale=2.0) == [2.0, 1.0, -2.0]
    assert guidance_weights(vector_scale=1.0, text_scale=1.0) == [1.0, 0.0, 0.0]
    with pytest.raises(ValueError):
        guidance_weights(2.0, vector_scale=1.0, text_scale=1.0)


@pytest.mark.numerics
def test_guidance_endpoints_are_exact_and_skip_zero_weight_branches(precision):
    """Exact at guidance 1 and 0 in either precision; the guided mix to the precision's rounding."""
    unet = tiny_unet().eval()
    cond, null = branches()
    x, t = torch.randn(2, *SHAPE), torch.tensor([30, 70])
    batch_sizes = []
    mix = 1e-4 if precision == "fp32" else 5e-2  # the batched forward (4 rows) against two of 2 rows

    def model(x_in, t_in, c):
        batch_sizes.append(x_in.shape[0])
        return unet(x_in, t_in, c)

    with torch.no_grad(), autocast(torch.device("cpu"), precision):
        torch.testing.assert_close(guided(model, [cond, null], [1.0, 0.0])(x, t), unet(x, t, cond), rtol=0, atol=0)
        torch.testing.assert_close(guided(model, [cond, null], [0.0, 1.0])(x, t), unet(x, t, null), rtol=0, atol=0)
        assert batch_sizes == [2, 2]  # one forward each, on the surviving branch only

        combined = guided(model, [cond, null], guidance_weights(3.0))(x, t)
        assert batch_sizes[-1] == 4  # both branches in one batched forward
        torch.testing.assert_close(combined, 3 * unet(x, t, cond) - 2 * unet(x, t, null), rtol=mix, atol=mix)


def test_guided_rejects_mismatched_weights():
    cond, null = branches()
    with pytest.raises(ValueError):
        guided(tiny_unet(), [cond, null], [1.0])
    with pytest.raises(ValueError):
        guided(tiny_unet(), [cond, null], [0.0, 0.0])
