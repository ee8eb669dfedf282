"""The judges: the attribute probe and the evaluation CLIP, which must share nothing with the conditioning CLIP."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dataclasses import replace

from harness import training
from harness.clip import load_clip
from harness.config import ShapesConfig
from harness.data.splits import load_split
from harness.data.world import ShapesWorld
from harness.errors import HarnessError
from harness.evaluator import load_probe
from harness.evaluator import probe as probe_stage
from harness.evaluator.probe_model import decode, encode_labels, heads, reading_order
from harness.runtime.pipeline import run_stage



def no_training(*args, **kwargs):
    raise AssertionError("a cached artifact was trained again")


def test_probe_labels_round_trip_in_reading_order():
    world = ShapesWorld(ShapesConfig(), 16)
    records, _ = probe_stage.render_scenes(world, 40, seed=1)
    assert {len(r["objects"]) for r in records} == {1, 2}
    sizes = [n for _, n in heads(world.vocab)]
    for record in records:
        labels = encode_labels(record, world.vocab)
        logits = torch.cat([torch.nn.functional.one_hot(torch.tensor(max(label, 0)), n).float()
                            for label, n in zip(labels, sizes)])[None]
        decoded = decode(logits, world.vocab)[0]
        keep = ("shape", "color", "size", "position", "row", "col")
        assert decoded["background"] == record["background"]
        assert decoded["objects"] == [{k: o[k] for k in keep} for o in reading_order(record)]


def test_probe_trains_reads_scene_records_and_is_reused(smoke_config, smoke_data, monkeypatch):
    cfg = smoke_config()
    ctx = smoke_data(cfg)
    data = ctx["data"]
    artifact = run_stage("probe", ctx)
    assert set(artifact.meta["accuracy"]) >= {"background", "count", "shape", "color", "size", "position"}
    assert artifact.meta["accuracy_test_split"]
    torch.load(artifact.file("probe.pt"), weights_only=True)

    monkeypatch.setattr(training, "train", no_training)
    again = run_stage("probe", ctx)
    assert again.reused

    probe = load_probe(again)
    test = load_split(data, "test")
    records = probe.read(test.pixels[:16])
    assert len(records) == 16 and all(1 <= len(r["objects"]) <= 2 for r in records)
    world = ShapesWorld(cfg.data.shapes, cfg.data.resolution)
    for prompt, record in zip(test.prompts[:16], records):
        assert set(world.check(prompt, record)) == set(prompt.mentioned)
    as_float = torch.from_numpy(np.array(test.pixels[:16])).permute(0, 3, 1, 2).float() / 127.5 - 1
    assert probe.read(as_float) == records
    features = probe.features(test.pixels[:16])
    assert features.shape == (16, cfg.evaluator.probe.feature_dim)


def test_probe_needs_the_shapes_world(smoke_config, smoke_data):
    cfg = smoke_config()
    ctx = smoke_data(cfg)
    data = ctx["data"]
    cfg.data.source = "hf"
    with pytest.raises(HarnessError, match="shapes world"):
        run_stage("probe", ctx)


def test_eval_clip_shares_no_weights_with_the_conditioning_clip(smoke_config, smoke_data):
    cfg = smoke_config()
    ctx = smoke_data(cfg)
    data = ctx["data"]
    conditioning, _ = load_clip(run_stage("clip", ctx))
    artifact = run_stage("eval_clip", ctx)
    evaluator, _ = load_clip(artifact)
    assert "zero_shot" in artifact.meta["quality"]
    ours, theirs = dict(evaluator.state_dict()), dict(conditioning.state_dict())
    # Another architecture: each tower one layer deeper (weights the conditioning CLIP has no name for) and
    # narrower (shared names with other shapes).
    assert set(ours) - set(theirs)
    assert any(ours[name].shape != theirs[name].shape for name in set(ours) & set(theirs))
    storages = {t.untyped_storage().data_ptr() for t in theirs.values()}
    for name, tensor in ours.items():
        assert tensor.untyped_storage().data_ptr() not in storages, name
        if name in theirs and tensor.is_floating_point() and tensor.numel() > 1:
            assert not torch.equal(tensor, theirs[name]), name


def test_eval_clip_ignores_the_conditioning_clips_seed_and_hard_negatives(smoke_config, smoke_data, monkeypatch):
    cfg = smoke_config()
    ctx = smoke_data(cfg)
    data = ctx["data"]
    built = run_stage("eval_clip", ctx)
    monkeypatch.setattr(training, "train", no_training)
    other = smoke_config("clip.train.seed=9", "clip.hard_negatives=true", "conditioning=[glide]")
    again = run_stage("eval_clip", replace(ctx, cfg=other))
    assert again.reused and again.key == built.key
