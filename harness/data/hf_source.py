"""`data=hf`: any image-caption `datasets` dataset, made to look like the shapes artifact.

Sources, tried in this order: a folder written by `save_to_disk`; a folder of images with a metadata.jsonl
or metadata.csv captions file (datasets' `imagefolder`); a hub name (`data.hf.name` its configuration,
`data.hf.revision` its version), read from the local datasets cache alone unless `data.hf.allow_network=true`
(and `HF_HUB_OFFLINE=1` keeps even that offline, as datasets does).

The caption column holds one text per image, or a list of them (COCO's five): each image is then trained
with each of its captions, and a held-out image is prompted by its first. `data.hf.max_images` takes that
many images at random (the data seed), not the first ones. Images are decoded here, one by one, so an
unreadable file is reported with its index instead of failing somewhere inside a training loop.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from harness.config import DataConfig
from harness.data.splits import split_sizes
from harness.errors import HarnessError
from harness.seeds import derived_seed

log = logging.getLogger(__name__)
VERSION = "3"  # 2: transparent pixels laid on white, captions stripped; 3: max_images at random, caption lists
TEXT_TYPES = ("string", "large_string")


def check_path(cfg: DataConfig) -> tuple[Path, bool]:
    """(the dataset's path, whether it is a local folder) of `data.hf.path`, or a one-line error naming the key
    when it cannot be reached; the preflight checks it before a run folder exists."""
    hf, path = cfg.hf, Path(cfg.hf.path).expanduser()
    local = path.is_absolute() or cfg.hf.path.startswith((".", "~")) or path.exists()
    if path.is_file():
        raise HarnessError(f"data.hf.path: {hf.path} is a file; give the folder that holds the dataset")
    if local and not path.exists():
        raise HarnessError(f"data.hf.path: no folder {hf.path}")
    for key in ("name", "revision"):
        if local and getattr(hf, key):
            raise HarnessError(f"data.hf.{key}: only a hub dataset has one; {hf.path} is a local folder")
    return path, local


@contextlib.contextmanager
def _hub_offline() -> Iterator[None]:
    """datasets and huggingface_hub read HF_HUB_OFFLINE once, when imported; a load without network permission
    sets their flags for its duration, so that a hub name is looked up in the local cache alone."""
    import datasets
    from huggingface_hub import constants as hub

    saved = datasets.config.HF_HUB_OFFLINE, hub.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = hub.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, hub.HF_HUB_OFFLINE = saved


def _load(cfg: DataConfig):
    """The dataset at `data.hf.path`, every problem with reaching it said in one line that names the key."""
    import datasets

    hf = cfg.hf
    path, local = check_path(cfg)
    if not local:
        try:
            with contextlib.nullcontext() if hf.allow_network else _hub_offline():
                return datasets.load_dataset(hf.path, hf.name or None, revision=hf.revision or None)
        except Exception as exc:  # offline, a dataset missing from the cache raises ConnectionError
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            where = "" if hf.allow_network else (
                f" from the local datasets cache ({datasets.config.HF_DATASETS_CACHE}); set "
                "data.hf.allow_network=true to download it")
            raise HarnessError(f"data.hf.path: hub dataset {hf.path!r} could not be loaded{where} ({reason})") from None
    try:
        if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
            return datasets.load_from_disk(str(path))
        return datasets.load_dataset("imagefolder", data_dir=str(path))
    except Exception as exc:  # datasets raises many types; the user needs the path and the reason
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise HarnessError(f"data.hf.path: {hf.path} could not be read as a dataset ({reason})") from None


def _describe(feature) -> str:
    """A column's type in words, for errors: `int64`, `list of string`, `image`."""
    import datasets

    if isinstance(feature, datasets.Image):
        return "images"
    if isinstance(feature, datasets.Value):
        return str(feature.dtype)
    inner = getattr(feature, "feature", None)
    return f"list of {_describe(inner)}" if inner is not None else type(feature).__name__


def _open(cfg: DataConfig):
    """The configured split with its image column as undecoded records, checked column by column."""
    import datasets

    hf = cfg.hf
    loaded = _load(cfg)
    if isinstance(loaded, datasets.DatasetDict):
        if hf.split not in loaded:
            raise HarnessError(f"data.hf.split: {hf.path} has no split {hf.split!r}; splits are "
                               f"{', '.join(loaded)}")
        loaded = loaded[hf.split]
    columns = ", ".join(loaded.column_names)
    for key, column in (("image_column", hf.image_column), ("text_column", hf.text_column)):
        if column not in loaded.column_names:
            # An imagefolder without a captions file has an image column only: say what it is missing.
            hint = (" (an image folder needs a metadata.jsonl or metadata.csv captions file)"
                    if key == "text_column" and loaded.column_names == ["image"] else "")
            raise HarnessError(f"data.hf.{key}: {hf.path} has no column {column!r}; columns are {columns}{hint}")
    if len(loaded) == 0:
        raise HarnessError(f"data.hf.path: {hf.path} (split {hf.split!r}) has no rows")
    text, image = loaded.features[hf.text_column], loaded.features[hf.image_column]
    if not (_is_text(text) or _is_text(getattr(text, "feature", None))):
        raise HarnessError(f"data.hf.text_column: column {hf.text_column!r} of {hf.path} holds {_describe(text)}, "
                           f"not text; columns are {columns}")
    # Image features, or file paths that datasets can read as images.
    if not (isinstance(image, datasets.Image) or (isinstance(image, datasets.Value) and image.dtype in TEXT_TYPES)):
        raise HarnessError(f"data.hf.image_column: column {hf.image_column!r} of {hf.path} holds "
                           f"{_describe(image)}, not images; columns are {columns}")
    return loaded.cast_column(hf.image_column, datasets.Image(decode=False))


def _is_text(feature) -> bool:
    import datasets

    return isinstance(feature, datasets.Value) and feature.dtype in TEXT_TYPES


def _captions(cfg: DataConfig, table) -> list[list[str]]:
    """Each image's captions (one, or the column's list), stripped; an empty caption, or an image without one,
    would train the model on the unconditional slot."""
    column = table[cfg.hf.text_column]
    captions = [[c] if isinstance(c, str) or c is None else list(c) for c in column]
    empty = [i for i, texts in enumerate(captions) if not texts or any(c is None or not c.strip() for c in texts)]
    if empty:
        raise HarnessError(f"data.hf.text_column: {len(empty)} of {len(captions)} images in column "
                           f"{cfg.hf.text_column!r} of {cfg.hf.path} have an empty caption (the first at index "
                           f"{empty[0]})")
    return [[c.strip() for c in texts] for texts in captions]


def to_rgb_square(image: Image.Image, resolution: int) -> np.ndarray:
    """Grayscale/RGBA/palette to RGB, shorter side resized to `resolution`, centre-cropped.

    Transparent pixels are laid on white, as an image viewer shows them; dropping the alpha channel instead
    would show whatever colour the file happens to store under them (often black)."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", image.size, (255, 255, 255, 255)), image)
    image = image.convert("RGB")
    scale = resolution / min(image.size)
    w, h = max(resolution, round(image.width * scale)), max(resolution, round(image.height * scale))
    image = image.resize((w, h), Image.Resampling.BICUBIC)
    left, top = (w - resolution) // 2, (h - resolution) // 2
    return np.asarray(image.crop((left, top, left + resolution, top + resolution)), dtype=np.uint8)


def _decode(record: dict, index: int, cfg: DataConfig) -> Image.Image:
    try:
        raw = record.get("bytes")
        image = Image.open(io.BytesIO(raw)) if raw else Image.open(record["path"])
        image.load()
        return image
    except Exception as exc:  # PIL raises several types for broken files
        raise HarnessError(f"data.hf.image_column: image at index {index} of {cfg.hf.path} could not be read "
                           f"({exc})") from None


def build(cfg: DataConfig, workdir: Path) -> dict:
    import datasets

    from harness.runtime.progress import bar

    table = _open(cfg)
    n = len(table) if cfg.hf.max_images is None else min(len(table), cfg.hf.max_images)
    if n < len(table):  # a random subset: the first rows of a dataset are often one class or one source
        chosen = np.random.default_rng(derived_seed(cfg.seed, "hf_max_images")).choice(len(table), n, replace=False)
        table = table.select(sorted(chosen))
    captions = _captions(cfg, table)
    try:
        sizes = split_sizes(n, cfg.val_fraction, cfg.test_fraction)
    except ValueError as exc:
        raise HarnessError(f"data.hf.max_images: {exc}") from None
    images = np.empty((n, cfg.resolution, cfg.resolution, 3), dtype=np.uint8)
    converted: dict[str, int] = {}  # image mode -> how many were converted to RGB
    cropped = 0
    for i, record in enumerate(bar(table.select_columns([cfg.hf.image_column]), desc="data: decoding images",
                                   total=n, enabled=n >= 1000)):
        image = _decode(record[cfg.hf.image_column], i, cfg)
        if image.mode != "RGB":
            converted[image.mode] = converted.get(image.mode, 0) + 1
        cropped += image.width != image.height
        images[i] = to_rgb_square(image, cfg.resolution)
    if converted or cropped:
        modes = ", ".join(f"{count} {mode}" for mode, count in sorted(converted.items()))
        log.info("hf data: converted to RGB: %s; centre-cropped %d non-square images", modes or "none", cropped)
    # Shuffle once with the data seed so that val/test are not just the dataset's tail. Images are split, then
    # the training images repeat once per caption; val and test images keep their first.
    order = np.random.default_rng(cfg.seed).permutation(n)
    splits, start = {}, 0
    for name, size in sizes.items():
        rows = order[start:start + size]
        start += size
        pairs = [(i, text) for i in rows for text in (captions[i] if name == "train" else captions[i][:1])]
        np.save(workdir / f"pixels_{name}.npy", images[[i for i, _ in pairs]])
        splits[name] = datasets.Dataset.from_dict(
            {"image": [images[i] for i, _ in pairs], "caption": [text for _, text in pairs]},
            features=datasets.Features({"image": datasets.Image(), "caption": datasets.Value("string")}))
    datasets.DatasetDict(splits).save_to_disk(str(workdir / "dataset"))
    log.info("hf data: %d images from %s at %d px", n, cfg.hf.path, cfg.resolution)
    return {"images": n, "captions": sum(len(c) for c in captions), "source": cfg.hf.path,
            "splits": {k: len(v) for k, v in splits.items()},
            "converted_to_rgb": converted, "centre_cropped": cropped}
