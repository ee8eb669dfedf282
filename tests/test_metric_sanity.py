"""The metrics, on the real evaluator, say what they should on cases whose answer is known.

A judge a little bigger than the smoke preset's (trained in about a minute) reads fresh real renders; each
test would fail if the metric or the evaluator were broken: FID that cannot tell noise from real images,
entropy that is not 0 for identical samples, a probe that cannot read real images, a CLIP score that
prefers wrong captions.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.clip import encode_images, encode_texts, load_clip
from harness.data.world import attribute_value, prompts_by_kind
from harness.evaluator import probe as probe_stage
from harness.metrics.clip_score import clip_score
from harness.metrics.distribution import fid_kid
from harness.metrics.diversity import mean_pairwise_distance, normalised_entropy

JUDGE = ["data.num_images=3000", "evaluator.probe.num_train_images=6000", "evaluator.probe.width=16",
         "evaluator.probe.feature_dim=64",
         "evaluator.probe.train={steps: 500, batch_size: 128, lr: 3e-3, warmup_steps: 20, ema_decay: 0.99}",
         "clip.embed_dim=32", "clip.vision_width=64", "clip.text_width=64",
         "clip.train={steps: 400, batch_size: 128, lr: 2e-3, warmup_steps: 20}"]


@pytest.fixture(scope="module")
def judge(session_cache):
    from harness.runtime import pipeline
    from harness.cli import compose
    from harness.runtime.context import Context

    cfg = compose(["experiment=smoke", f"cache_dir={session_cache}", "logger.mode=disabled", *JUDGE])
    ctx = pipeline.build(Context.start(cfg), through=("probe", "eval_clip"))
    probe = probe_stage.load_probe(ctx["probe"])
    model, tokenizer = load_clip(ctx["eval_clip"])
    return cfg, ctx.world, probe, model, tokenizer


def test_fid_real_vs_real_is_near_zero_and_far_below_noise_and_shuffled_colours(judge):
    cfg, world, probe, _, _ = judge
    _, _, real_a = world.generate(2000, seed=101)
    _, _, real_b = world.generate(2000, seed=202)
    noise = np.random.default_rng(0).integers(0, 256, real_a.shape, dtype=np.uint8)
    shuffled = real_b[..., [2, 0, 1]]  # every colour (and background) changed, shapes and layout kept
    features = {name: probe.features(images).double() for name, images in
                (("a", real_a), ("b", real_b), ("noise", noise), ("shuffled", shuffled))}
    same = fid_kid(features["a"], features["b"])["fid"]
    against_noise = fid_kid(features["a"], features["noise"])["fid"]
    against_shuffled = fid_kid(features["a"], features["shuffled"])["fid"]
    # Real against real is not exactly 0: FID is biased upwards by finite samples (~ feature dim / N).
    assert same < 0.2 * against_shuffled and same < 0.2 * against_noise, (same, against_shuffled, against_noise)


def test_identical_images_have_no_diversity_and_free_attributes_have_full_entropy(judge):
    cfg, world, probe, _, _ = judge
    prompt = next(p for p in prompts_by_kind(world, ["free"], 20, seed=3) if "background" in p.free_attributes(world.vocab))
    scenes, images = world.references(prompt, 300, seed=5)
    copies = np.repeat(images[:1], 8, axis=0)
    assert mean_pairwise_distance(probe.features(copies)) == pytest.approx(0.0, abs=1e-5)
    readings = probe.read(copies)
    for key, count in prompt.free_attributes(world.vocab).items():
        assert normalised_entropy([attribute_value(prompt, r, key) for r in readings], count) == 0.0
    # Real references draw the free attributes uniformly, so the probe's reading of them is near 1.
    readings = probe.read(images)
    entropies = [normalised_entropy([attribute_value(prompt, r, key) for r in readings], count)
                 for key, count in prompt.free_attributes(world.vocab).items()]
    assert min(entropies) > 0.9, entropies


def test_probe_scores_real_images_near_one(judge):
    cfg, world, probe, _, _ = judge
    prompts, scenes, images = world.generate(500, seed=77)
    readings = probe.read(images)
    accuracy = np.mean([np.mean(list(world.check(p, r).values())) for p, r in zip(prompts, readings)])
    assert accuracy > 0.9, accuracy


def test_clip_score_ranks_matching_captions_above_mismatched(judge):
    cfg, world, _, model, tokenizer = judge
    prompts = prompts_by_kind(world, ["full"], 100, seed=9)
    images = np.stack([world.references(p, 1, seed=i)[1][0] for i, p in enumerate(prompts)])
    image_vectors = encode_images(model, images)
    captions = [p.caption for p in prompts]
    matching = clip_score(image_vectors, encode_texts(model, tokenizer, captions))
    mismatched = clip_score(image_vectors, encode_texts(model, tokenizer, captions[1:] + captions[:1]))
    assert (matching > mismatched).float().mean() > 0.75
    assert matching.mean() > mismatched.mean()
