"""Conditioning modes: every mode encodes, guidance is exact at 0 and 1, and a new mode needs no other code."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from harness.cli import compose
from harness.conditioning.base import ModeInputs
from harness.decoder.diffusion import guided
from harness.decoder.stage import ClipContext, build_decoder
from support.stages import shipped_modes

D, L, VOCAB = 16, 8, 100
ALL_MODES = shipped_modes()


def clip_context() -> ClipContext:
    empty = torch.zeros(L, dtype=torch.long)
    empty[:2] = torch.tensor([VOCAB - 2, VOCAB - 1])  # start and end of text, as open_clip lays them out
    return ClipContext(D, VOCAB, L, empty, torch.nn.functional.normalize(torch.randn(D), dim=0))


def inputs(batch: int = 4, seed: int = 0) -> ModeInputs:
    g = torch.Generator().manual_seed(seed)
    tokens = torch.zeros(batch, L, dtype=torch.long)
    tokens[:, 0] = VOCAB - 2
    tokens[:, 1:4] = torch.randint(1, VOCAB - 2, (batch, 3), generator=g)
    tokens[:, 4] = VOCAB - 1
    unit = lambda: torch.nn.functional.normalize(torch.randn(batch, D, generator=g), dim=-1)  # noqa: E731
    return ModeInputs(tokens, unit(), unit())


def decoder_for(mode: str):
    cfg = compose(["experiment=smoke", f"conditioning=[{mode}]"]) if mode != "test_image_only_text_seq" else \
        compose(["experiment=smoke", "conditioning=[glide]"])
    if mode == "test_image_only_text_seq":  # a flag combination the package does not ship, written here only
        cfg.conditioning = {mode: dataclasses.replace(cfg.conditioning["glide"], vector_source="image",
                                                      clip_tokens=2)}
    torch.manual_seed(0)
    model = build_decoder(cfg, mode, clip_context())
    for p in model.parameters():  # zero-initialised output layers would hide the condition at step 0
        if p.dim() > 1 and not p.detach().any():
            torch.nn.init.normal_(p, std=0.1)
    return model.eval()


@pytest.mark.parametrize("mode", ALL_MODES + ["test_image_only_text_seq"])
def test_prediction_depends_on_condition_but_not_for_null(mode):
    model = decoder_for(mode)
    x, t = torch.randn(4, 3, 16, 16), torch.full((4,), 500)
    a, b = inputs(seed=0), inputs(seed=1)
    with torch.no_grad():
        pred_a, pred_b = model(x, t, model.mode(a)), model(x, t, model.mode(b))
        yes = torch.ones(4, dtype=torch.bool)
        null_a, null_b = model(x, t, model.mode(a, yes, yes)), model(x, t, model.mode(b, yes, yes))
    assert not torch.allclose(pred_a, pred_b, atol=1e-5)
    torch.testing.assert_close(null_a, null_b)


@pytest.mark.parametrize("mode", ["glide", "clip_text", "combined"])
def test_guidance_one_is_conditional_and_zero_unconditional(mode):
    model = decoder_for(mode)
    x, t, batch = torch.randn(4, 3, 16, 16), torch.full((4,), 300), inputs()
    yes = torch.ones(4, dtype=torch.bool)
    with torch.no_grad():
        cond, null = model(x, t, model.mode(batch)), model(x, t, model.mode(batch, yes, yes))
        for scale, expected in ((1.0, cond), (0.0, null)):
            branches, weights = model.mode.guidance_branches(batch, scale)
            torch.testing.assert_close(guided(model, branches, weights)(x, t), expected, rtol=0, atol=0)
        three = guided(model, *model.mode.guidance_branches(batch, 3.0))(x, t)
    torch.testing.assert_close(three, null + 3.0 * (cond - null), rtol=1e-4, atol=1e-5)


def test_separate_scales_reduce_to_joint():
    model = decoder_for("combined")
    x, t, batch = torch.randn(4, 3, 16, 16), torch.full((4,), 300), inputs()
    with torch.no_grad():
        joint = guided(model, *model.mode.guidance_branches(batch, 2.5))(x, t)
        separate = guided(model, *model.mode.guidance_branches(batch, 2.5, text_scale=2.5))(x, t)
    torch.testing.assert_close(joint, separate, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="one pathway"):
        decoder_for("clip_text").mode.guidance_branches(batch, 2.0, text_scale=1.0)


def test_token_groups_name_clip_and_text_tokens():
    model = decoder_for("combined")
    cond = model.mode(inputs())
    assert cond.token_groups == (("clip", 4), ("text", L))
    assert decoder_for("glide").mode(inputs()).token_groups == (("text", L),)
    assert decoder_for("glide_seq").mode(inputs()).vector is None  # pooled=false: sequence only
    assert decoder_for("clip_text_k1").mode(inputs()).token_groups == (("clip", 1),)


def test_a_hidden_token_group_changes_the_prediction_and_nothing_else():
    """The reliance test hides one group from attention: its mask goes False, the other group and the vector stay."""
    model = decoder_for("combined")
    cond = model.mode(inputs())
    without_clip = cond.without("clip")
    assert not without_clip.mask[:, :4].any() and torch.equal(without_clip.mask[:, 4:], cond.mask[:, 4:])
    assert torch.equal(without_clip.vector, cond.vector) and torch.equal(without_clip.tokens, cond.tokens)
    assert cond.mask[:, :4].all()  # the original is untouched
    x, t = torch.randn(4, 3, 16, 16), torch.full((4,), 500)
    with torch.no_grad():
        assert not torch.allclose(model(x, t, cond), model(x, t, without_clip))
    assert model.mode.cfg.token_groups == ("clip", "text")
    with pytest.raises(ValueError, match="no token group 'image'.*clip, text"):
        cond.without("image")
