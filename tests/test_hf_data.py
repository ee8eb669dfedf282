"""`data=hf` loads local datasets offline and reports bad input in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from harness.runtime.context import Context
from harness.data import splits
from harness.errors import HarnessError
from harness.runtime.pipeline import run_stage


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
    cfg = smoke_config("data=hf", "sweep.prompts_per_kind=1", f"data.hf.path={tmp_path / 'ds'}", "data.hf.image_column=img",
                       cache=tmp_path / "cache")
    artifact = run_stage("data", Context.start(cfg))
    train = splits.load_split(artifact, "train")
    assert train.pixels.shape[1:] == (16, 16, 3)
    assert sum(len(splits.load_split(artifact, s)) for s in splits.SPLITS) == 12
    assert all(c.startswith("picture") for c in train.captions)
    assert train.prompts is None


def test_imagefolder_with_captions_file(smoke_config, tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    with open(folder / "metadata.jsonl", "w") as f:
        for i in range(10):
            Image.fromarray(np.full((40, 24, 3), i * 20, dtype=np.uint8)).save(folder / f"{i}.png")
            f.write(json.dumps({"file_name": f"{i}.png", "caption": f"grey level {i}"}) + "\n")
    cfg = smoke_config("data=hf", "sweep.prompts_per_kind=1", f"data.hf.path={folder}", "data.hf.text_column=caption",
                       cache=tmp_path / "cache")
    artifact = run_stage("data", Context.start(cfg))
    assert sum(len(splits.load_split(artifact, s)) for s in splits.SPLITS) == 10


def test_missing_column_names_it_and_the_columns(smoke_config, tmp_path):
    write_disk_dataset(tmp_path / "ds")
    cfg = smoke_config("data=hf", "sweep.prompts_per_kind=1", f"data.hf.path={tmp_path / 'ds'}", "data.hf.image_column=img",
                       "data.hf.text_column=caption", cache=tmp_path / "cache")
    with pytest.raises(HarnessError) as info:
        run_stage("data", Context.start(cfg))
    message = str(info.value)
    assert "data.hf.text_column" in message and "'caption'" in message and "img, text" in message
    assert "\n" not in message


def test_unreadable_image_reported_with_index(smoke_config, tmp_path):
    write_disk_dataset(tmp_path / "ds", broken_index=5)
    cfg = smoke_config("data=hf", "sweep.prompts_per_kind=1", f"data.hf.path={tmp_path / 'ds'}", "data.hf.image_column=img",
                       cache=tmp_path / "cache")
    with pytest.raises(HarnessError, match="index 5"):
        run_stage("data", Context.start(cfg))


def write_imagefolder(folder, images, captions=None):
    """An imagefolder: PNGs plus (unless `captions` is None) a metadata.jsonl with a `caption` column."""
    folder.mkdir()
    for i, image in enumerate(images):
        image.save(folder / f"{i}.png")
    if captions is not None:
        (folder / "metadata.jsonl").write_text("".join(json.dumps({"file_name": f"{i}.png", "caption": c}) + "\n"
                                                       for i, c in enumerate(captions)))
    return folder


def test_rgba_and_non_square_images_are_converted(smoke_config, tmp_path):
    # A red square on a transparent 40x20 canvas: the centre crop keeps the square, the rest turns white.
    pixels = np.zeros((20, 40, 4), dtype=np.uint8)
    pixels[5:15, 15:25] = (255, 0, 0, 255)
    folder = write_imagefolder(tmp_path / "rgba", [Image.fromarray(pixels, mode="RGBA")] * 6, ["a red square"] * 6)
    cfg = smoke_config("data=hf", "sweep.prompts_per_kind=1", f"data.hf.path={folder}", "data.hf.text_column=caption",
                       cache=tmp_path / "cache")
    artifact = run_stage("data", Context.start(cfg))
    image = splits.load_split(artifact, "train").pixels[0]
    assert image.shape == (16, 16, 3)
    assert tuple(image[0, 0]) == (255, 255, 255) and tuple(image[8, 8]) == (255, 0, 0)
    assert artifact.meta["converted_to_rgb"] == {"RGBA": 6} and artifact.meta["centre_cropped"] == 6


def _grey(n):
    return [Image.fromarray(np.full((8, 8, 3), 40 * i % 256, dtype=np.uint8)) for i in range(n)]


@pytest.mark.parametrize("make, overrides, key, words", [
    (lambda d: d / "nowhere", [], "data.hf.path", ["no folder"]),
    (lambda d: write_imagefolder(d / "named", _grey(4), ["a", "b", "c", "d"]),
     ["data.hf.text_column=caption", "data.hf.name=2017"], "data.hf.name", ["only a hub dataset", "local folder"]),
    (lambda d: write_imagefolder(d / "empty", []), [], "data.hf.path", ["could not be read"]),
    (lambda d: write_imagefolder(d / "uncaptioned", _grey(4)), ["data.hf.text_column=caption"],
     "data.hf.text_column", ["columns are image", "metadata.jsonl"]),
    (lambda d: write_imagefolder(d / "blanks", _grey(6), ["one", "", "three", "   ", "five", "six"]),
     ["data.hf.text_column=caption"], "data.hf.text_column", ["2 of 6 images", "empty caption", "index 1"]),
    (lambda d: write_imagefolder(d / "tiny", _grey(2), ["one", "two"]), ["data.hf.text_column=caption"],
     "data.hf.max_images", ["2 images are too few"]),
    (lambda d: write_imagefolder(d / "few_held_out", _grey(20), [f"grey {i}" for i in range(20)]),
     ["data.hf.text_column=caption", "sweep.prompts_per_kind=5"], "sweep.prompts_per_kind",
     ["asks for 5 held-out captions", "has 2 distinct ones (2 images)", "data.test_fraction"]),
])
def test_bad_datasets_fail_at_the_data_stage_in_one_line(smoke_config, tmp_path, make, overrides, key, words):
    path = make(tmp_path)
    cfg = smoke_config("data=hf", "sweep.prompts_per_kind=1", f"data.hf.path={path}", *overrides,
                       cache=tmp_path / "cache")
    with pytest.raises(HarnessError) as info:
        run_stage("data", Context.start(cfg))
    message = str(info.value)
    assert message.startswith(key + ":") and "\n" not in message, message
    assert all(word in message for word in words), message


def test_caption_column_that_is_not_text_names_its_type(smoke_config, tmp_path):
    import datasets

    rows = {"image": _grey(4), "caption": [1, 2, 3, 4], "text": ["a", "b", "c", "d"]}
    datasets.Dataset.from_dict(rows).save_to_disk(str(tmp_path / "ds"))
    cfg = smoke_config("data=hf", "sweep.prompts_per_kind=1", f"data.hf.path={tmp_path / 'ds'}", "data.hf.text_column=caption",
                       cache=tmp_path / "cache")
    with pytest.raises(HarnessError, match=r"^data.hf.text_column: column 'caption' .* holds int64, not text; "
                                           r"columns are image, caption, text$"):
        run_stage("data", Context.start(cfg))


def write_hub_cache(cache_root, repo: str, rows: dict) -> None:
    """`rows` as the datasets cache holds a hub dataset `repo` it downloaded once: the Arrow files of its
    prepared splits under `<cache>/<namespace>___<name>/default/0.0.0/<hash>/`, named after the dataset.
    Made here by preparing a local Parquet copy (datasets' own writer) and moving it to the hub name's place."""
    import shutil

    import datasets

    namespace, name = repo.split("/")
    parquet = cache_root / "source" / "train.parquet"
    parquet.parent.mkdir(parents=True)
    datasets.Dataset.from_dict(rows).to_parquet(str(parquet))
    datasets.load_dataset("parquet", data_files={"train": str(parquet)}, cache_dir=str(cache_root / "prepare"))
    (prepared,) = [p for p in (cache_root / "prepare" / "parquet").glob("*/*/*") if p.is_dir()]
    target = cache_root / f"{namespace}___{name}" / "default" / "0.0.0" / prepared.name
    shutil.copytree(prepared, target)
    for arrow in target.glob("parquet-*.arrow"):
        arrow.rename(arrow.with_name(arrow.name.replace("parquet-", f"{name}-", 1)))


def test_a_hub_dataset_loads_from_the_local_cache_without_network(smoke_config, tmp_path, monkeypatch):
    import datasets

    cache = tmp_path / "hf_cache"
    write_hub_cache(cache, "someone/tiny", {"image": _grey(12), "text": [f"grey {i % 4}" for i in range(12)]})
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    cfg = smoke_config("data=hf", "sweep.prompts_per_kind=1", "data.hf.path=someone/tiny", cache=tmp_path / "cache")
    before = datasets.config.HF_HUB_OFFLINE
    artifact = run_stage("data", Context.start(cfg))
    assert sum(len(splits.load_split(artifact, s)) for s in splits.SPLITS) == 12
    assert datasets.config.HF_HUB_OFFLINE == before  # offline for the load only

    missing = smoke_config("data=hf", "sweep.prompts_per_kind=1", "data.hf.path=someone/some-dataset",
                           cache=tmp_path / "cache")
    with pytest.raises(HarnessError) as info:
        run_stage("data", Context.start(missing))
    message = str(info.value)
    assert message.startswith("data.hf.path: hub dataset 'someone/some-dataset'") and "\n" not in message
    assert "local datasets cache" in message and "data.hf.allow_network=true" in message


def test_max_images_takes_a_random_subset_of_the_seed(smoke_config, tmp_path):
    write_disk_dataset(tmp_path / "ds", n=40)

    def captions(seed: int) -> set[str]:
        cfg = smoke_config("data=hf", "sweep.prompts_per_kind=1", f"data.hf.path={tmp_path / 'ds'}",
                           "data.hf.image_column=img", "data.hf.max_images=10", f"data.seed={seed}",
                           cache=tmp_path / "cache")
        artifact = run_stage("data", Context.start(cfg))
        return {c for s in splits.SPLITS for c in splits.load_split(artifact, s).captions}

    first = captions(0)
    assert len(first) == 10 and first != {f"picture {i}" for i in range(10)}  # not the first ten rows
    assert captions(0) == first and captions(1) != first
