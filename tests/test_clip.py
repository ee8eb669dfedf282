"""The conditioning CLIP (scratch and pretrained), its embeddings, hard-negative captions and loss, on smoke."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss
from safetensors.torch import save_file

from harness import training
from harness.clip import encode_images, encode_texts, load_clip, load_embeddings
from harness.clip import stage as clip_stage
from harness.clip.loss import HardNegativeClipLoss
from harness.clip.negatives import HardNegatives
from harness.config import ShapesConfig
from harness.data.splits import load_split
from harness.data.world import ShapesWorld
from harness.errors import ConfigError, HarnessError
from harness.runtime.pipeline import run_stage



def no_training(*args, **kwargs):
    raise AssertionError("a cached artifact was trained again")


def test_scratch_clip_trains_saves_and_is_reused(smoke_config, smoke_data, monkeypatch):
    cfg = smoke_config()
    ctx = smoke_data(cfg)
    data = ctx["data"]
    clip = run_stage("clip", ctx)
    for name in ("open_clip_config.json", "open_clip_model.safetensors", "checkpoint.pt"):
        assert clip.file(name).exists(), name
    torch.load(clip.file("checkpoint.pt"), weights_only=True)
    quality = clip.meta["quality"]
    assert {"color", "shape", "size", "position", "background"} <= set(quality["zero_shot"])
    assert {"recall@1", "recall@5", "top1_satisfies"} <= set(quality["retrieval"])
    assert 0 <= quality["binding"]["swap_accuracy"] <= 1 and quality["binding"]["images"] > 0
    assert clip.meta["train"]["resumed_from_step"] == 0

    monkeypatch.setattr(training, "train", no_training)
    again = run_stage("clip", ctx)
    assert again.reused and again.key == clip.key

    model, tokenizer = load_clip(again)
    val = load_split(data, "val")
    text, image = encode_texts(model, tokenizer, val.captions[:8]), encode_images(model, val.pixels[:8])
    assert text.shape == image.shape == (8, cfg.clip.embed_dim)
    assert torch.allclose(text.norm(dim=1), torch.ones(8), atol=1e-5)
    # both image layouts: dataset uint8 [N, H, W, 3] and decoder float [N, 3, H, W] in [-1, 1]
    as_float = torch.from_numpy(np.array(val.pixels[:8])).permute(0, 3, 1, 2).float() / 127.5 - 1
    assert torch.allclose(encode_images(model, as_float), image, atol=1e-5)


def test_killed_build_resumes_from_its_checkpoint(smoke_config, smoke_data, monkeypatch):
    cfg = smoke_config("clip.train.seed=3")  # its own artifact; the dataset is shared
    ctx = smoke_data(cfg)
    data = ctx["data"]
    real_train = training.train

    def killed_after_ten_steps(model, loss_fn, fetch, size, train_cfg, workdir, *args, **kwargs):
        real_train(model, loss_fn, fetch, size, dataclasses.replace(train_cfg, steps=10), workdir, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "train", killed_after_ten_steps)
    with pytest.raises(KeyboardInterrupt):
        run_stage("clip", ctx)
    monkeypatch.setattr(training, "train", real_train)
    clip = run_stage("clip", ctx)
    assert clip.meta["train"]["resumed_from_step"] == 10 and not clip.reused


def test_embeddings_cover_every_split_and_match_the_clip(smoke_config, smoke_data, monkeypatch):
    cfg = smoke_config()
    ctx = smoke_data(cfg)
    data = ctx["data"]
    clip = run_stage("clip", ctx)
    embeddings = run_stage("embeddings", ctx.with_artifacts({"clip": clip}))
    table = load_embeddings(embeddings)
    model, tokenizer = load_clip(clip)
    for name in ("train", "val", "test"):
        split, entry = load_split(data, name), table[name]
        n = len(split)
        assert entry["text"].shape == entry["image"].shape == (n, cfg.clip.embed_dim)
        assert entry["tokens"].shape == (n, cfg.clip.context_length) and entry["tokens"].dtype == torch.int64
        assert torch.allclose(entry["image"].norm(dim=1), torch.ones(n), atol=1e-5)
    val = load_split(data, "val")
    assert torch.allclose(encode_texts(model, tokenizer, val.captions), table["val"]["text"], atol=1e-5)
    assert embeddings.meta["vocab_size"] == model.vocab_size

    monkeypatch.setattr("harness.clip.embeddings.encode_images", no_training)
    assert run_stage("embeddings", ctx.with_artifacts({"clip": clip})).reused


def test_only_what_a_stage_reads_changes_its_key(smoke_config, smoke_data):
    cfg = smoke_config()
    ctx = smoke_data(cfg)
    data = ctx["data"]
    base = clip_stage.stage_config(cfg)
    assert clip_stage.stage_config(smoke_config("sweep.guidance=[1.0,9.0]", "prior.width=64")) == base
    assert clip_stage.stage_config(smoke_config("evaluator.clip_seed=7")) == base
    assert clip_stage.stage_config(smoke_config("clip.hard_negatives=true")) != base
    assert clip_stage.stage_config(smoke_config("clip.embed_dim=16")) != base


# ------------------------------------------------------------------------------------------ hard negatives

def test_hard_negatives_are_false_for_their_own_image():
    world = ShapesWorld(ShapesConfig(), 16)
    negatives = HardNegatives(world.vocab, 3)
    prompts, scenes, _ = world.generate(300, seed=5)
    rng = np.random.default_rng(0)
    for prompt, scene in zip(prompts, scenes):
        record = scene.to_record(world.vocab.grid)
        assert all(world.check(prompt, record).values())
        edits = negatives.false_prompts(prompt, record, rng)
        assert len(edits) == 3
        for edit in edits:
            assert edit.caption != prompt.caption
            assert not all(world.check(edit, record).values()), (prompt.caption, edit.caption)
        if prompt.relation:  # the first two swap the colours, then the shapes, of the two objects
            (a, b), (c, d) = prompt.objects, edits[0].objects
            assert (c.color, d.color, c.shape, d.shape) == (b.color, a.color, a.shape, b.shape)
            assert [o.shape for o in edits[1].objects] == [b.shape, a.shape]
    assert len(negatives(prompts[:4], [s.to_record(3) for s in scenes[:4]], rng)) == 12


def test_hard_negative_loss_extends_clip_loss():
    g = torch.Generator().manual_seed(0)
    image, text = (F.normalize(torch.randn(6, 8, generator=g), dim=-1) for _ in range(2))
    negatives = F.normalize(torch.randn(6, 2, 8, generator=g), dim=-1)
    scale = torch.tensor(10.0)
    loss = HardNegativeClipLoss()
    assert torch.allclose(loss(image, text, scale), ClipLoss()(image, text, scale))
    with_negatives = loss(image, text, scale, negative_text_features=negatives)
    own = scale * (image[:, None, :] * negatives).sum(-1)
    logits = torch.cat([scale * image @ text.T, own], dim=1)
    expected = (F.cross_entropy(logits, torch.arange(6)) + F.cross_entropy(scale * text @ image.T, torch.arange(6))) / 2
    assert torch.allclose(with_negatives, expected)
    assert with_negatives > loss(image, text, scale)


def test_hard_negative_clip_trains(smoke_config, smoke_data):
    cfg = smoke_config("clip.hard_negatives=true")
    ctx = smoke_data(cfg)
    data = ctx["data"]
    clip = run_stage("clip", ctx)
    assert clip.meta["train"]["final_loss"] > 0


def test_hard_negatives_need_the_shapes_world(smoke_config):
    with pytest.raises(ConfigError, match="clip.hard_negatives"):
        smoke_config("data=hf", "data.hf.path=/nowhere", "clip.hard_negatives=true")


# ------------------------------------------------------------------------------------------ pretrained

TINY = {"embed_dim": 16,
        "vision_cfg": {"image_size": 16, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}


@pytest.fixture(scope="module")
def tiny_architectures(tmp_path_factory):
    """Two tiny open_clip architectures registered by config file, so 'pretrained' weights are quick to make."""
    folder = tmp_path_factory.mktemp("model_configs")
    wider = json.loads(json.dumps(TINY))
    wider["vision_cfg"]["width"] = 48
    for name, config in (("harness-test-tiny", TINY), ("harness-test-wider", wider)):
        (folder / f"{name}.json").write_text(json.dumps(config))
    open_clip.add_model_config(folder)
    return "harness-test-tiny", "harness-test-wider"


def test_pretrained_weights_from_a_local_file(smoke_config, smoke_data, tiny_architectures, tmp_path):
    tiny, _ = tiny_architectures
    torch.manual_seed(0)
    source = open_clip.create_model(tiny).eval()
    weights = tmp_path / "tiny.pt"
    torch.save(source.state_dict(), weights)
    cfg = smoke_config("clip=pretrained", f"clip.architecture={tiny}", f"clip.weights={weights}")
    ctx = smoke_data(cfg)
    data = ctx["data"]
    clip = run_stage("clip", ctx)
    model, tokenizer = load_clip(clip)
    captions = load_split(data, "val").captions[:4]
    tokens = tokenizer(captions)
    with torch.no_grad():
        assert torch.allclose(model.encode_text(tokens), source.encode_text(tokens), atol=1e-6)
    assert "zero_shot" in clip.meta["quality"]


@pytest.mark.parametrize("defect", ["missing", "unexpected", "shape"])
def test_mismatched_weights_fail_in_one_line(smoke_config, smoke_data, tiny_architectures, tmp_path, defect):
    tiny, wider = tiny_architectures
    state = open_clip.create_model(tiny).state_dict()
    if defect == "missing":
        key = "text_projection"
        del state[key]
    elif defect == "unexpected":
        key = "extra.weight"
        state[key] = torch.zeros(1)
    else:
        state = open_clip.create_model(wider).state_dict()
        key = next(k for k, v in state.items() if v.shape != open_clip.create_model(tiny).state_dict()[k].shape)
    weights = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(weights))
    cfg = smoke_config("clip=pretrained", f"clip.architecture={tiny}", f"clip.weights={weights}")
    ctx = smoke_data(cfg)
    data = ctx["data"]
    with pytest.raises(HarnessError) as error:
        run_stage("clip", ctx)
    message = str(error.value)
    assert "\n" not in message and str(weights) in message and repr(key) in message
    assert {"missing": "missing key", "unexpected": "unexpected key", "shape": "has shape"}[defect] in message


def test_pretrained_needs_weights_or_an_allowed_tag(smoke_config):
    with pytest.raises(ConfigError, match="clip.weights"):
        smoke_config("clip=pretrained")
    with pytest.raises(ConfigError, match="allow_network"):
        smoke_config("clip=pretrained", "clip.pretrained_tag=openai")
