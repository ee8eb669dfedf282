import pytest
import torch

from harness.conditioning.condition import Condition
from harness.decoder import cpu_slices
from harness.decoder.attention_record import record_attention
from harness.decoder.unet import UNET_SIZES, UNet, build_unet

GROUPS = (("clip", 2), ("text", 3))


def make_unet(**overrides) -> UNet:
    torch.manual_seed(0)
    unet = UNet(**{**dict(resolution=8, width=16, channel_mults=(1, 2), num_res_blocks=1,
                          attention_resolutions=(8, 4), heads=2, ctx_dim=8), **overrides})
    # Zero-initialised output layers make a fresh UNet output exactly 0 whatever its inputs; give every
    # all-zero parameter random values so that the sensitivity tests below can see anything.
    with torch.no_grad():
        for p in unet.parameters():
            if not p.any():
                p.normal_(std=0.2)
    return unet.eval()


def make_cond(batch: int = 2, seed: int = 1) -> Condition:
    g = torch.Generator().manual_seed(seed)
    return Condition(vector=torch.randn(batch, 64, generator=g), tokens=torch.randn(batch, 5, 8, generator=g),
                     token_groups=GROUPS)


def inputs(batch: int = 2):
    g = torch.Generator().manual_seed(2)
    return torch.randn(batch, 3, 8, 8, generator=g), torch.tensor([10, 500][:batch])


def test_output_shape_and_widths():
    unet = make_unet()
    x, t = inputs()
    assert unet(x, t, make_cond()).shape == x.shape
    assert unet.emb_dim == 64 and unet.ctx_dim == 8
    assert make_unet(ctx_dim=None).ctx_dim == 64  # tokens default to the embedding width


def test_fresh_unet_predicts_zero():
    """The zero-initialised final conv is what keeps early training stable."""
    torch.manual_seed(0)
    unet = UNet(resolution=8, width=16, channel_mults=(1, 2), num_res_blocks=1, attention_resolutions=(4,), heads=2)
    x, t = inputs()
    assert torch.count_nonzero(unet(x, t, Condition())) == 0


@pytest.mark.parametrize("field", ["vector", "tokens"])
def test_output_depends_on_condition(field):
    unet = make_unet()
    x, t = inputs()
    cond = make_cond()
    other = Condition(**{**cond.__dict__, field: torch.randn_like(getattr(cond, field))})
    with torch.no_grad():
        assert not torch.allclose(unet(x, t, cond), unet(x, t, other), atol=1e-5)


def test_masked_tokens_do_not_affect_output():
    unet = make_unet()
    x, t = inputs()
    cond = make_cond()
    mask = torch.tensor([[True, True, True, False, False], [True, False, False, False, False]])
    changed = cond.tokens.clone()
    changed[~mask] = 100.0
    with torch.no_grad():
        out = unet(x, t, Condition(cond.vector, cond.tokens, mask, GROUPS))
        out_changed = unet(x, t, Condition(cond.vector, changed, mask, GROUPS))
    torch.testing.assert_close(out, out_changed)


def test_attention_without_tokens_and_with_everything_masked():
    unet = make_unet()
    x, t = inputs()
    cond = make_cond()
    with torch.no_grad():
        spatial_only = unet(x, t, Condition(vector=cond.vector))
        all_masked = unet(x, t, Condition(cond.vector, cond.tokens, torch.zeros(2, 5, dtype=torch.bool), GROUPS))
    assert torch.isfinite(all_masked).all()
    torch.testing.assert_close(spatial_only, all_masked)


def test_recorder_masses_sum_to_one_and_name_every_group():
    unet = make_unet()
    x, t = inputs()
    cond = make_cond()
    cond.mask[1, 2:] = False  # all "text" tokens of sample 1 are masked
    with torch.no_grad():
        plain = unet(x, t, cond)
        with record_attention(unet) as rec:
            recorded = unet(x, t, cond)
            unet(x, t, cond)
    torch.testing.assert_close(recorded, plain)  # explicit softmax agrees with the fused kernel
    mass = rec.mass()
    # attention at 8 and 4 px down and up, plus the middle block
    assert set(mass) == {"down.0.blocks.0.attn", "down.1.blocks.0.attn", "mid.0.attn",
                         "up.0.blocks.0.attn", "up.0.blocks.1.attn", "up.1.blocks.0.attn", "up.1.blocks.1.attn"}
    for layer, groups in mass.items():
        assert set(groups) == {"spatial", "clip", "text"}, layer
        assert sum(groups.values()) == pytest.approx(1.0, abs=1e-5), layer
        assert all(v >= 0 for v in groups.values())


def test_recording_only_the_conditional_rows_keeps_their_masses_and_every_rows_output():
    # Under guidance the sweep records the conditional branch (the first rows) and the rest run fused.
    unet = make_unet()
    x, t = inputs()
    cond = make_cond()
    cond.mask[1, 2:] = False
    with torch.no_grad():
        plain = unet(x, t, cond)
        with record_attention(unet) as every_row:
            unet(x, t, cond)
        with record_attention(unet, rows=1) as first_row:
            recorded = unet(x, t, cond)
    torch.testing.assert_close(recorded, plain)
    for layer, groups in first_row.per_sample().items():
        for group, masses in groups.items():
            torch.testing.assert_close(masses, every_row.per_sample()[layer][group][:1])


def test_a_large_inference_batch_runs_in_slices_with_every_rows_output_and_recorded_masses(monkeypatch):
    """Slices of 2 rows over a 5-row batch whose first 3 rows are recorded (the conditional branch): the slice
    at row 2 records one row, the one at row 4 none. Outputs and masses match one pass over the whole batch."""
    unet = make_unet()
    x, t = inputs(batch=1)
    x, t = x.repeat(5, 1, 1, 1) + torch.arange(5.0)[:, None, None, None], torch.arange(5) * 100
    cond = make_cond(batch=5)
    cond.mask[3, 2:] = False

    def run(slice_pixels: int):
        monkeypatch.setattr(cpu_slices, "CPU_SLICE_PIXELS", slice_pixels)
        with torch.no_grad(), record_attention(unet, rows=3) as recorder:
            outputs = [unet(x, t, cond) for _ in range(2)]  # two sampling steps
        return outputs, recorder

    (whole, _), whole_rec = run(10_000)
    (sliced, again), sliced_rec = run(2 * 8 * 8)
    torch.testing.assert_close(sliced, whole)  # kernels for 2 rows may round differently from those for 5
    assert torch.equal(sliced, again)
    for layer, groups in whole_rec.per_sample().items():
        for group, masses in groups.items():
            assert masses.shape == (3,)
            torch.testing.assert_close(sliced_rec.per_sample()[layer][group], masses)
            torch.testing.assert_close(sliced_rec.per_token()[layer][group], whole_rec.per_token()[layer][group])
    assert all(recorder.offset == 0 for recorder in (whole_rec, sliced_rec))


def test_recorder_counts_masked_tokens_as_zero_and_turns_off():
    unet = make_unet()
    x, t = inputs()
    cond = make_cond()
    cond.mask[:, 2:] = False
    with torch.no_grad(), record_attention(unet) as rec:
        unet(x, t, cond)
    assert all(groups["text"] == 0.0 and groups["clip"] > 0 for groups in rec.mass().values())
    with torch.no_grad():
        unet(x, t, cond)  # outside the context nothing more is recorded
    assert all(m.recording is None for m in unet.modules() if hasattr(m, "recording"))


@pytest.mark.parametrize("size", sorted(UNET_SIZES))
@pytest.mark.parametrize("resolution", [16, 32, 64])
def test_presets_build_and_run(size, resolution):
    # On the meta device nothing is allocated or computed, yet every shape is checked.
    with torch.device("meta"):
        unet = build_unet(size, resolution)
        cond = Condition(vector=torch.randn(2, unet.emb_dim), tokens=torch.randn(2, 4, unet.ctx_dim))
        x = torch.randn(2, 3, resolution, resolution)
        assert unet(x, torch.tensor([1, 2]), cond).shape == x.shape


def test_unknown_preset_names_the_choices():
    with pytest.raises(ValueError, match="huge.*tiny"):
        build_unet("huge", 16)


def test_recorder_keeps_each_samples_mass_for_per_prompt_intervals():
    """Sample 1 has its text tokens masked: its own text mass is 0 while sample 0's is not, and the layer
    mean is the mean of the two (the sweep turns these per-sample masses into per-prompt values)."""
    unet = make_unet()
    x, t = inputs()
    cond = make_cond()
    cond.mask[1, 2:] = False
    with torch.no_grad(), record_attention(unet) as rec:
        for _ in range(3):  # three sampling steps of the same batch
            unet(x, t, cond)
    per_sample, mass, per_token = rec.per_sample(), rec.mass(), rec.per_token()
    for layer, groups in per_sample.items():
        assert groups["text"][1] == 0.0 < groups["text"][0], layer
        # Two CLIP tokens always; sample 0 attends to its text tokens, sample 1 to none of them.
        torch.testing.assert_close(per_token[layer]["clip"], groups["clip"] / 2)
        torch.testing.assert_close(per_token[layer]["text"], groups["text"] / torch.tensor([3.0, 1.0]))
        assert sum(groups.values()) == pytest.approx(torch.ones(2), abs=1e-5)
        assert mass[layer]["clip"] == pytest.approx(groups["clip"].mean().item())
    with pytest.raises(ValueError, match="record one batch per recorder"), torch.no_grad(), \
            record_attention(unet) as rec:
        unet(x, t, cond)
        unet(torch.randn(3, 3, 8, 8), torch.tensor([10, 20, 30]), make_cond(batch=3))
