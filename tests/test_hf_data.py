"""`data=hf` loads local datasets offline and reports bad input in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from harness.cache import ArtifactCache
from harness.data import build as data_stage
from harness.errors import HarnessError


def write_disk_dataset(path, n=12, broken_index=None):
    import datasets

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (20, 30), dtype=np.uint8), mode="L") for _ in range(n)]
    table = datasets.Dataset.from_dict({"img": images, "text": [f"picture {i}" for i in range(n)]},
                                       features=datasets.Features({"img": datasets.Image(),
                                                                   "text": datasets.Value("string")}))
    if broken_index is not None:
        raw = table.cast_column("img", datasets.Image(decode=False))
        records = raw.to_dict()
        records["img"][broken_index] = {"bytes": b"not an image", "path": None}
        table = datasets.Dataset.from_dict(records, features=raw.features)
    table.save_to_disk(str(path))


def test_load_from_disk_grayscale_to_rgb(smoke_config, tmp_path):
    write_disk_dataset(tmp_path / "ds")
    cfg = smoke_config("data=hf", f"data.hf.path={tmp_path / 'ds'}", "data.hf.image_column=img",
                       "sweep.prompt_kinds=[full,free]", cache=tmp_path / "cache")
    artifact = data_stage.run(cfg.data, ArtifactCache(tmp_path / "cache"))
    train = data_stage.load_split(artifact, "train")
    assert train.pixels.shape[1:] == (16, 16, 3)
    assert sum(len(data_stage.load_split(artifact, s)) for s in data_stage.SPLITS) == 12
    assert all(c.startswith("picture") for c in train.captions)
    assert train.prompts is None


def test_imagefolder_with_captions_file(smoke_config, tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    with open(folder / "metadata.jsonl", "w") as f:
        for i in range(10):
            Image.fromarray(np.full((40, 24, 3), i * 20, dtype=np.uint8)).save(folder / f"{i}.png")
            f.write(json.dumps({"file_name": f"{i}.png", "caption": f"grey level {i}"}) + "\n")
    cfg = smoke_config("data=hf", f"data.hf.path={folder}", "data.hf.text_column=caption",
                       "sweep.prompt_kinds=[full]", cache=tmp_path / "cache")
    artifact = data_stage.run(cfg.data, ArtifactCache(tmp_path / "cache"))
    assert sum(len(data_stage.load_split(artifact, s)) for s in data_stage.SPLITS) == 10


def test_missing_column_names_it_and_the_columns(smoke_config, tmp_path):
    write_disk_dataset(tmp_path / "ds")
    cfg = smoke_config("data=hf", f"data.hf.path={tmp_path / 'ds'}", "data.hf.image_column=img",
                       "data.hf.text_column=caption", "sweep.prompt_kinds=[full]", cache=tmp_path / "cache")
    with pytest.raises(HarnessError) as info:
        data_stage.run(cfg.data, ArtifactCache(tmp_path / "cache"))
    message = str(info.value)
    assert "data.hf.text_column" in message and "'caption'" in message and "img, text" in message
    assert "\n" not in message


def test_unreadable_image_reported_with_index(smoke_config, tmp_path):
    write_disk_dataset(tmp_path / "ds", broken_index=5)
    cfg = smoke_config("data=hf", f"data.hf.path={tmp_path / 'ds'}", "data.hf.image_column=img",
                       "sweep.prompt_kinds=[full]", cache=tmp_path / "cache")
    with pytest.raises(HarnessError, match="index 5"):
        data_stage.run(cfg.data, ArtifactCache(tmp_path / "cache"))


def test_hub_name_needs_network_permission(smoke_config, tmp_path):
    cfg = smoke_config("data=hf", "data.hf.path=someone/some-dataset", "sweep.prompt_kinds=[full]",
                       cache=tmp_path / "cache")
    with pytest.raises(HarnessError, match="allow_network"):
        data_stage.run(cfg.data, ArtifactCache(tmp_path / "cache"))
