"""`data=hf` end to end on the smoke preset: a dataset the test writes, in both layouts a user has, with column
names other than the defaults, to a report with curves, grids and a metrics table for the four core modes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from harness.runtime import pipeline

COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (40, 60, 220), "yellow": (230, 220, 40)}
CORE_MODES = {"glide", "clip_text", "unclip", "combined"}


def striped_images(n: int, seed: int = 0) -> tuple[list[Image.Image], list[str]]:
    """n noisy 24 x 20 images of coloured stripes (non-square, so they are cropped) and their captions."""
    rng = np.random.default_rng(seed)
    images, captions = [], []
    for i in range(n):
        colour, direction = list(COLOURS)[i % 4], ("horizontal", "vertical")[i // 4 % 2]
        pixels = np.full((20, 24, 3), 240, dtype=np.int64)
        for start in range(0, 20, 5):
            if direction == "horizontal":
                pixels[start:start + 2] = COLOURS[colour]
            else:
                pixels[:, start:start + 2] = COLOURS[colour]
        pixels += rng.integers(-20, 20, pixels.shape)
        images.append(Image.fromarray(pixels.clip(0, 255).astype(np.uint8)))
        captions.append(f"{direction} {colour} stripes")
    return images, captions


def save_to_disk(folder) -> list[str]:
    import datasets

    images, captions = striped_images(160)
    datasets.Dataset.from_dict({"picture": images, "description": captions}).save_to_disk(str(folder))
    return ["data.hf.image_column=picture", "data.hf.text_column=description"]


def coco_style(folder) -> list[str]:
    """As COCO is laid out: a list of captions per image (two or three here, worded differently), with
    `save_to_disk`."""
    import datasets

    images, captions = striped_images(160, seed=2)
    lists = [[caption, f"a picture of {caption}", f"{caption}, drawn"][: 2 + i % 2] for i, caption in enumerate(captions)]
    datasets.Dataset.from_dict({"image": images, "sentences": lists}).save_to_disk(str(folder))
    return ["data.hf.text_column=sentences"]


def image_folder(folder) -> list[str]:
    folder.mkdir()
    images, captions = striped_images(160, seed=1)
    lines = []
    for i, (image, caption) in enumerate(zip(images, captions)):
        image.save(folder / f"{i:03d}.png")
        lines.append(json.dumps({"file_name": f"{i:03d}.png", "alt_text": caption}))
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return ["data.hf.text_column=alt_text"]


@pytest.mark.parametrize("write", [coco_style, image_folder])
def test_a_dataset_runs_to_a_report(smoke_config, tmp_path, write):
    columns = write(tmp_path / "dataset")
    # Six held-out captions: enough prompts for the k-NN metrics (precision, recall...) on one real image each.
    cfg = smoke_config("data=hf", f"data.hf.path={tmp_path / 'dataset'}", *columns, "sweep.prompts_per_kind=6",
                       cache=tmp_path / "cache")
    summary = pipeline.run(cfg, tmp_path / "run")

    run = tmp_path / "run"
    report = (run / "report.md").read_text()
    assert report.startswith("# Report") and "## Key findings" in report and "![curves](curves.png)" in report
    assert (run / "curves.png").stat().st_size > 0 and (run / "grid_caption.png").stat().st_size > 0
    table = pd.read_csv(run / "metrics.csv")
    assert CORE_MODES | {"real"} <= set(table["mode"])
    measured = set(table[table["mode"].isin(CORE_MODES)]["metric"])
    assert {"clip_score", "clip_retrieval", "pairwise_distance", "vendi", "fid", "kid", "precision",
            "recall"} <= measured
    assert not measured & {"attribute_accuracy", "binding_accuracy", "free_entropy"}  # they need the world's probe
    assert summary["setup"]["data"] == "hf" and "probe" not in summary
    if write is coco_style:  # each training image with each of its captions; held-out prompts by their first
        from harness.data.prompts import sweep_prompts
        from harness.data.splits import load_split
        from harness.runtime.context import Context

        ctx = Context.start(cfg)
        ctx = ctx.with_artifacts({"data": pipeline.run_stage("data", ctx)})
        data, train = ctx["data"], load_split(ctx["data"], "train")
        sizes = data.meta["splits"]
        assert data.meta["captions"] == sum(2 + i % 2 for i in range(160)) and data.meta["images"] == 160
        train_images = 160 - sizes["val"] - sizes["test"]  # val and test: one row (caption) per image
        assert 2 * train_images < len(train) == sizes["train"] < 3 * train_images
        assert {c.startswith("a picture of") for c in train.captions} == {True, False}
        assert not any(p.caption.startswith("a picture of") or p.caption.endswith(", drawn")
                       for p in sweep_prompts(ctx))


def test_a_held_out_caption_brings_every_test_image_it_captions(smoke_config, smoke_data, tmp_path):
    from harness.data.splits import load_split
    from harness.data.prompts import real_images, sweep_prompts

    columns = save_to_disk(tmp_path / "dataset")
    cfg = smoke_config("data=hf", f"data.hf.path={tmp_path / 'dataset'}", *columns, "sweep.prompts_per_kind=4",
                       "data.test_fraction=0.25", cache=tmp_path / "cache")
    ctx = smoke_data(cfg)
    prompts, test = sweep_prompts(ctx), load_split(ctx["data"], "test")
    assert len({p.caption for p in prompts}) == 4
    for prompt in prompts:
        assert sorted(prompt.images) == [row for row, c in enumerate(test.captions) if c == prompt.caption]
    images = real_images(ctx, prompts, [0, 1, 2, 3], k=12, seed_of=lambda i: 0)
    per_prompt = min(12, *(len(p.images) for p in prompts))
    assert per_prompt > 1 and images.shape[:2] == (4, per_prompt)  # captions repeat: a ceiling for diversity
    for i, prompt in enumerate(prompts):
        assert np.array_equal(images[i], np.asarray(test.pixels[list(prompt.images[:per_prompt])]))


def test_pretrained_clips_condition_and_judge_a_dataset(smoke_config, tmp_path):
    """clip=pretrained and evaluator.clip_weights, each from a local checkpoint the test writes, of a custom
    open_clip architecture given by its config file."""
    import open_clip
    import torch

    from harness.clip.model import create_from_folder

    config = {"embed_dim": 16,
              "vision_cfg": {"image_size": 16, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
              "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    architecture = tmp_path / "harness-test-dataset-clip.json"
    architecture.write_text(json.dumps(config))
    open_clip.add_model_config(architecture)
    weights = {}
    for role, seed in (("conditioning", 0), ("judge", 1)):
        torch.manual_seed(seed)
        weights[role] = tmp_path / f"{role}.pt"
        torch.save(open_clip.create_model(architecture.stem).state_dict(), weights[role])
    columns = save_to_disk(tmp_path / "dataset")
    cfg = smoke_config("data=hf", f"data.hf.path={tmp_path / 'dataset'}", *columns, "sweep.prompts_per_kind=6",
                       "clip=pretrained", f"clip.model_config={architecture}",
                       f"clip.weights={weights['conditioning']}",
                       f"evaluator.clip_model_config={architecture}", f"evaluator.clip_weights={weights['judge']}",
                       cache=tmp_path / "cache")
    summary = pipeline.run(cfg, tmp_path / "run")

    assert summary["clip"]["kind"] == "pretrained" and summary["eval_clip"]["kind"] == "pretrained"
    judge = torch.load(weights["judge"], weights_only=True)
    cache = tmp_path / "cache" / "eval_clip"
    installed, _ = create_from_folder(next(p for p in cache.iterdir() if (p / "artifact.json").exists()),
                                      torch.device("cpu"))
    assert all(torch.equal(installed.state_dict()[k], judge[k]) for k in judge)
    table = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert CORE_MODES <= set(table["mode"]) and {"clip_score", "fid"} <= set(table["metric"])
