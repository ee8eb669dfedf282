"""The prior stage: every compared prior fitted on the CLIP embeddings, saved, reloaded and scored on val;
and the CLIP, evaluator and prior stages on a dataset other than the shapes world."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dataclasses import replace

from harness.runtime import pipeline
from harness.clip import load_embeddings
from harness.runtime.context import Context
from harness.runtime.pipeline import run_stage
from harness.priors import Prior
from harness.priors import stage as prior_stage



def build(cfg):
    """The context holding the data, CLIP and embedding artifacts of `cfg`."""
    return pipeline.build(Context.start(cfg), through="embeddings")


def test_prior_stage_fits_saves_and_scores_every_prior(smoke_config, monkeypatch):
    cfg = smoke_config("prior.compare=[identity,linear]", "prior.kind=diffusion")
    ctx = build(cfg)
    artifact = run_stage("prior", ctx)
    quality = artifact.meta["quality"]
    assert set(quality) == {"identity", "linear", "diffusion"}
    for figures in quality.values():
        assert -1 <= figures["cosine"] <= 1 and 0 <= figures["retrieval_top1"] <= 1
    assert artifact.meta["kind"] == "diffusion"

    val = load_embeddings(ctx["embeddings"])["val"]
    for name in quality:
        torch.load(artifact.file(f"prior_{name}.pt"), weights_only=True)
        prior = prior_stage.load_prior(artifact, name)
        drawn = prior.sample(val["text"][:4], val["tokens"][:4], n=2, generator=torch.Generator().manual_seed(0))
        assert drawn.shape == (4, 2, cfg.clip.embed_dim)
        assert torch.allclose(drawn.norm(dim=-1), torch.ones(4, 2), atol=1e-4)
    identity = prior_stage.load_prior(artifact, "identity").sample(val["text"][:4], val["tokens"][:4])
    assert torch.allclose(identity[:, 0], val["text"][:4], atol=1e-6)
    with pytest.raises(KeyError, match="mean_shift"):
        prior_stage.load_prior(artifact, "mean_shift")

    def no_fit(*args, **kwargs):
        raise AssertionError("a cached prior was fitted again")

    monkeypatch.setattr(Prior, "fit", no_fit)
    for subclass in Prior.__subclasses__():
        monkeypatch.setattr(subclass, "fit", no_fit)
    again = run_stage("prior", replace(ctx, cfg=smoke_config("prior.compare=[identity,linear]", "sweep.guidance=[2.0]")))
    assert again.reused and again.key == artifact.key


def test_any_dataset_gets_clip_evaluator_and_priors(smoke_config, tmp_path):
    """data=hf: no world, so no zero-shot or attribute figures; retrieval counts the caption's own image."""
    import datasets

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)) for _ in range(40)]
    datasets.Dataset.from_dict({"image": images, "text": [f"picture {i % 7}" for i in range(40)]}).save_to_disk(
        str(tmp_path / "ds"))
    cfg = smoke_config("data=hf", f"data.hf.path={tmp_path / 'ds'}",
                       "prior.compare=[identity]", "prior.kind=linear", cache=tmp_path / "cache")
    ctx = build(cfg)
    assert set(ctx["clip"].meta["quality"]) == {"retrieval"}
    assert set(run_stage("eval_clip", ctx).meta["quality"]) == {"retrieval"}
    quality = run_stage("prior", ctx).meta["quality"]
    assert set(quality) == {"identity", "linear"} and "retrieval_own_image_top1" in quality["linear"]
